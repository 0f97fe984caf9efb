"""Splio API answers -> outcomes, JWT renewal rules, and the sender's reading of Splio's 429."""
from __future__ import annotations

import asyncio

import base64

import orjson
import pytest
from multidict import CIMultiDict

from dinsync.destinations.base import Request
from dinsync.destinations.splio.api import (EXISTS_REASON, PATCH, BulkContext, ReadContext, Tokens, _token_generation,
                                            describe, field_element, jwt_lifetime, parse_answer)
from dinsync.destinations.splio import SplioDestination
from dinsync.sender import HttpSender


def jwt(claims: dict) -> str:
    b64 = lambda d: base64.urlsafe_b64encode(orjson.dumps(d)).rstrip(b"=").decode()  # noqa: E731
    return f"{b64({'alg': 'HS256'})}.{b64(claims)}.sig"


def bulk(keys: list[str]) -> Request:
    ctx = BulkContext({}, {k: (k, "") for k in keys})
    return Request("contacts", "POST", "/data/contacts/bulk", b"{}", keys, context=ctx)


def patch(key: str) -> Request:
    return Request("contacts", "PATCH", f"/data/contacts/{key}", b"{}", [key], context=PATCH)


def answer(request: Request, status: int, body, tokens: Tokens | None = None, generation: int | None = 1):
    tokens = tokens or Tokens(3000)
    if tokens.token is None:
        tokens.store(jwt({"iat": 0, "exp": 3600}), 0)
    _token_generation.set(generation)
    return parse_answer(request, status, orjson.dumps(body) if not isinstance(body, bytes) else body, tokens)


def test_bulk_207_items_become_results():
    request = bulk(["a@x.com", "b@x.com", "c@x.com", "d@x.com"])
    out = answer(request, 207, {"time": 5, "errors": 2, "items": [
        {"contact_id": "a@x.com", "code": 201, "description": ""},
        {"contact_id": "b@x.com", "code": 400, "description": "Contact with unique key b@x.com already exists"},
        {"contact_id": "c@x.com", "code": 400, "description": "Custom field with id 5 and name ltv must be of type "
                                                             "double."}]})
    got = {r.key: (r.status, r.reason) for r in out.results}
    assert out.kind == "done"
    assert got["a@x.com"][0] == "ok"
    assert got["b@x.com"] == ("failed", EXISTS_REASON) and request.context.existing == {"b@x.com"}
    assert got["c@x.com"][0] == "rejected" and "must be of type double" in got["c@x.com"][1]
    assert got["d@x.com"][0] == "failed"  # no item for it: never guessed as acknowledged


def test_a_bulk_item_refusing_a_custom_field_names_it_by_the_id_in_splios_message():
    """A 207 item refused for a custom field said which one only in its text ("Custom field with id 5
    and name ltv ...", Splio's wording): the rejection's field was None. The id is read there and
    named by the sync's custom field of that id; an id the sync does not map names none."""
    request = bulk(["a@x.com", "b@x.com", "c@x.com"])
    tokens = Tokens(3000)
    tokens.store(jwt({"iat": 0, "exp": 3600}), 0)
    _token_generation.set(1)
    out = parse_answer(request, 207, orjson.dumps({"items": [
        {"contact_id": "a@x.com", "code": 400, "description": "Custom field with id 5 and name ltv must be of type "
                                                             "double."},
        {"contact_id": "b@x.com", "code": 400, "description": "Custom field not found for id 145."},
        {"contact_id": "c@x.com", "code": 400, "description": "Custom field not found for id 3."}]}),
        tokens, {"plan": 3, "ltv": 5})
    got = {r.key: (r.status, r.field) for r in out.results}
    assert got == {"a@x.com": ("rejected", "ltv"), "b@x.com": ("rejected", None), "c@x.com": ("rejected", "plan")}


def test_bulk_item_codes_given_as_digits_are_read_as_numbers():
    """Splio's examples give an item's `code` as a number; one given as its digits ("201") was read as
    an unknown status: a contact Splio created failed, and was sent again (and found existing) next
    run. A code that is neither stays unread (failed), never taken for acknowledged; True is no code."""
    request = bulk(["a@x.com", "b@x.com", "c@x.com", "d@x.com"])
    out = answer(request, 207, {"items": [
        {"contact_id": "a@x.com", "code": "201", "description": ""},
        {"contact_id": "b@x.com", "code": " 422 ", "description": "Custom field ltv must be of type double."},
        {"contact_id": "c@x.com", "code": "created"}, {"contact_id": "d@x.com", "code": True}]})
    got = {r.key: r.status for r in out.results}
    assert got == {"a@x.com": "ok", "b@x.com": "rejected", "c@x.com": "failed", "d@x.com": "failed"}


@pytest.mark.parametrize("code", [408, 425, 429, "429", 503])
def test_a_bulk_item_answered_with_a_transient_code_is_failed_not_parked(code):
    """A 207 item whose code is a "try again" (408 timeout, 425 too early, 429 rate limited) was read
    as any 4xx: rejected, parked until the row changed, though nothing was wrong with the contact.
    It is failed (sent again by the next run), as a 5xx item is; a content 4xx stays rejected."""
    request = bulk(["a@x.com", "b@x.com"])
    out = answer(request, 207, {"items": [
        {"contact_id": "a@x.com", "code": code, "description": "Too many requests, try again later"},
        {"contact_id": "b@x.com", "code": 400, "description": "Custom field ltv must be of type double."}]})
    got = {r.key: (r.status, r.reason) for r in out.results}
    assert got["a@x.com"][0] == "failed" and "try again later" in got["a@x.com"][1]
    assert got["b@x.com"][0] == "rejected"


def test_a_whole_bulk_400_is_split_and_other_answers_fail_the_batch():
    body = {"status": 400, "errors": [{"error_key": "contacts[3].email", "error": "wrong_email",
                                       "error_description": "x is not a valid email address"}]}
    out = answer(bulk(["a", "b"]), 400, body)
    assert out.kind == "split" and out.reason == ("Splio HTTP 400 wrong_email at contacts[3].email: "
                                                  "x is not a valid email address")
    out = answer(bulk(["a", "b"]), 404, {"status": 404, "errors": []})
    assert {r.status for r in out.results} == {"failed"}


def test_a_whole_bulk_400_sends_the_contacts_it_names_alone():
    # Splio's 400 names the contact by its position in the request, from a base it does not
    # document: the named contacts are suspects, sent alone, instead of halving the batch ~log2(n)
    # times; only a contact refused alone is rejected
    body = {"status": 400, "errors": [
        {"error_key": "contacts[2].language", "error": "wrong_value", "error_description": "language 'xx' is bad"},
        {"error_key": "contacts[0].custom_fields[1].value", "error": "wrong_type", "error_description": "not int"},
        {"error_key": "contacts[9].email", "error": "wrong_email", "error_description": "beyond the request"}]}
    out = answer(bulk(["a", "b", "c", "d"]), 400, body)
    assert (out.kind, out.results, out.suspects, out.field) == ("split", [], ["c", "a"], "language")
    assert out.reason == "Splio HTTP 400 wrong_value at contacts[2].language: language 'xx' is bad"
    body = {"status": 400, "errors": [{"error_key": "contacts", "error": "wrong_value", "error_description": "x"}]}
    out = answer(bulk(["a", "b"]), 400, body)
    assert (out.suspects, out.field) == ([], None)  # names no contact: halved


def test_patch_answers():
    assert answer(patch("a"), 200, {"id": 1}).results == []
    [nf] = answer(patch("a"), 404, {"status": 404, "errors": [{"error_key": "id", "error": "wrong_value",
                                                               "error_description": "Contact not found"}]}).results
    assert nf.status == "not_found"
    [bad] = answer(patch("a"), 400, {"status": 400, "errors": [{"error_key": "language", "error": "wrong_value",
                                                                "error_description": "language 'xx'"}]}).results
    assert bad.status == "rejected" and "language" in bad.reason
    # the field it names, when the PATCH sent it, is the rejection's field (a custom field's position is not)
    sent = Request("contacts", "PATCH", "/data/contacts/a", orjson.dumps({"language": "xx", "firstname": "A",
                                                                          "custom_fields": [{"id": 5, "value": "x"}]}),
                   ["a"], context=PATCH)
    fields = [answer(sent, 400, {"status": 400, "errors": [{"error_key": key, "error": "wrong_value",
                                                            "error_description": "no"}]}).results[0].field
              for key in ("language", "lastname", "custom_fields[0].value", "custom_fields")]
    assert fields == ["language", None, None, None]
    assert bad.field is None  # (that PATCH sent no language)


def test_a_refused_custom_field_is_named_by_the_id_the_request_sent_it_with():
    """Splio names a custom field's error by its position (`contacts[0].custom_fields[1].value`):
    the rejection's field was None, where a standard field's error gave its name. The position
    is read in the request (the custom field's id there) and the id named by the sync's fields."""
    custom_ids = {"plan": 3, "ltv": 5}
    one = orjson.dumps({"contacts": [{"email": "a@x.com", "custom_fields": [{"id": 3, "value": "p"},
                                                                           {"id": 5, "value": "x"}]}]})
    single = Request("contacts", "POST", "/data/contacts/bulk", one, ["a@x.com"],
                     context=BulkContext({}, {"a@x.com": ("a@x.com", "")}))
    body = {"status": 400, "errors": [{"error_key": "contacts[0].custom_fields[1].value", "error": "wrong_type",
                                       "error_description": "Custom field with id 5 and name ltv must be of type "
                                                            "double."}]}
    tokens = Tokens(3000)
    tokens.store(jwt({"iat": 0, "exp": 3600}), 0)
    _token_generation.set(1)
    out = parse_answer(single, 400, orjson.dumps(body), tokens, custom_ids)
    assert (out.kind, out.field) == ("split", "ltv")
    sent = Request("contacts", "PATCH", "/data/contacts/a", orjson.dumps({"custom_fields": [{"id": 5, "value": "x"}]}),
                   ["a"], context=PATCH)
    body = {"status": 400, "errors": [{"error_key": "custom_fields[0].value", "error": "wrong_type",
                                       "error_description": "no"}]}
    [bad] = parse_answer(sent, 400, orjson.dumps(body), tokens, custom_ids).results
    assert (bad.status, bad.field) == ("rejected", "ltv")
    # a position the request does not hold, or an id no mapped field has, names none
    body["errors"][0]["error_key"] = "custom_fields[4].value"
    assert parse_answer(sent, 400, orjson.dumps(body), tokens, custom_ids).results[0].field is None
    assert parse_answer(sent, 400, orjson.dumps({**body, "errors": [{**body["errors"][0], "error_key":
                        "custom_fields[0].value"}]}), tokens, {"plan": 3}).results[0].field is None



@pytest.mark.parametrize("status", [400, 422])
def test_a_patch_refused_for_a_contact_not_found_is_not_found_whatever_its_status(status):
    """Splio documents `Contact not found for given identifier.` at error_key `id` with a 404 on the
    contact's sub-resources; for PATCH neither is listed. Answered with a 400, an unknown contact of an
    update sync was rejected and parked (never looked for again until its row changed, even once the
    contact exists), where update mode reports it not_found and sends it again next run."""
    missing = {"status": status, "errors": [{"error_key": "id", "error": "wrong_value",
                                             "error_description": "Contact not found for given identifier."}]}
    [nf] = answer(patch("a"), status, missing).results
    assert nf.status == "not_found"
    # the same status about a value of the contact, or about an id the body sent, is still a rejection
    for error in ({"error_key": "language", "error": "wrong_value", "error_description": "not found in the list"},
                  {"error_key": "custom_fields[0].id", "error": "wrong_value",
                   "error_description": "Custom field not found for id 145."}):
        [bad] = answer(patch("a"), status, {"status": status, "errors": [error]}).results
        assert bad.status == "rejected"


NGINX_400 = (b"<html><head><title>400 Bad Request</title></head><body><center><h1>400 Bad Request</h1></center>"
             b"<hr><center>nginx</center></body></html>")


@pytest.mark.parametrize("status, body", [(400, NGINX_400), (422, b""), (404, b"<html>404 Not Found</html>"),
                                          (404, b'{"message": "no Route matched with those values"}'),
                                          (400, b'{"message": "Bad request"}')])
def test_an_answer_that_is_not_splios_envelope_fails_the_rows_instead_of_parking_them(status, body):
    # a proxy's or gateway's page says nothing about the contact: sent again next run, never parked
    # (400) nor reported as a contact that does not exist (404)
    [result] = answer(patch("a@x.com"), status, body).results
    assert result.status == "failed" and f"Splio HTTP {status}" in result.reason
    assert "not Splio's error envelope" in result.reason
    out = answer(bulk(["a@x.com", "b@x.com"]), status, body)
    assert out.kind == "done" and {(r.key, r.status) for r in out.results} == {("a@x.com", "failed"),
                                                                               ("b@x.com", "failed")}
    # a body-size refusal still splits a batch (the batch may be what is too large)
    assert answer(bulk(["a@x.com", "b@x.com"]), 413, NGINX_400).kind == "split"

@pytest.mark.parametrize("body", [b"Maximum request body size 1048576 exceeded, actual body size 1048720", NGINX_400,
                                  b""])
def test_a_patch_refused_as_too_large_is_rejected_like_a_bulk_of_one(body):
    # a changed row holding a 1 MB value (update mode: every row) is PATCHed; a server or proxy
    # capping bodies at 1 MiB (aiohttp's default, nginx's client_max_body_size) answers 413 to that
    # same body every time: parked until the row changes, as the bulk's split rejects such a contact
    # alone. It failed instead, and every next run sent it again and failed (exit 1)
    [result] = answer(patch("a@x.com"), 413, body).results
    assert result.status == "rejected" and "Splio HTTP 413" in result.reason


def test_a_2xx_that_is_not_splios_answer_is_sent_again():
    """A proxy's or a captive portal's 200 page: a glitch of one answer, retried like a 5xx. A bulk
    answer without items failed its 1,000 rows at once; a PATCH took the page for Splio's word."""
    page = b"<html><head><title>Portal</title></head><body>sign in</body></html>"
    for body in (page, b"", {"message": "ok"}):
        assert answer(bulk(["a@x.com", "b@x.com"]), 200, body).kind == "retry"
    assert answer(patch("a@x.com"), 200, page).kind == "retry"
    assert answer(patch("a@x.com"), 200, {"email": "a@x.com"}).kind == "done"
    request = Request("other", "GET", "/data/fields/contacts", None, ["fields"], context=ReadContext("fields"))
    assert answer(request, 200, page).kind == "retry"


def test_a_patch_answered_200_without_the_contact_is_sent_again():
    """Splio answers a PATCH with the contact it edited (200 + the contact). A 2xx without it (an
    empty body, cut or unreadable JSON, `null`, `{}`, a proxy's plain "OK") is no acknowledgement:
    the PATCH may never have reached Splio. Taken for one, the row entered the snapshot with values
    Splio never got, and no later run sent them (nothing changed, as far as the snapshot knew)."""
    for body in (b"", b'{"email": "a@x.c', b"{not json", b"null", b"{}", b"[]", b"OK", b'"ok"'):
        outcome = answer(patch("a@x.com"), 200, body)
        assert outcome.kind == "retry", body
        assert "not Splio's answer to a PATCH" in outcome.reason
    assert answer(patch("a@x.com"), 200, {"email": "a@x.com", "firstname": "A"}).kind == "done"


def test_a_field_list_answer_without_its_elements_is_read_again():
    """Splio lists a universe's contact fields as `{"elements": [...], ...}`. A 200 JSON without that
    list (`{}`, a gateway's `{"message": "ok"}`) is not its answer: read as an empty list, it failed
    the run as a configuration error (exit 3, "Splio has no custom contact field 'plan'") over a
    glitch of one answer. It is read again, as a page is; an answer listing no fields still counts."""
    def fields() -> Request:
        ctx = ReadContext("the universe's contact fields", needs="elements")
        return Request("other", "GET", "/data/fields/contacts", None, ["fields"], context=ctx)
    for body in ({}, {"message": "ok"}, {"elements": None}, {"elements": {"id": 1}}):
        outcome = answer(fields(), 200, body)
        assert outcome.kind == "retry", body
        assert "not Splio's answer" in outcome.reason
    request = fields()
    assert answer(request, 200, {"elements": [], "count_element": 0}).kind == "done"
    assert request.context.data == {"elements": [], "count_element": 0}
    unique_key = Request("other", "GET", "/universes/unique-key", None, ["key"], context=ReadContext("key"))
    assert answer(unique_key, 200, {}).kind == "done"  # (no key named: email, the default)


def test_reads_keep_the_document():
    ctx = ReadContext("fields")
    request = Request("other", "GET", "/data/fields/contacts", None, ["fields"], context=ctx)
    assert answer(request, 200, {"elements": []}).kind == "done" and ctx.data == {"elements": []}
    assert answer(request, 500, b"oops").results[0].status == "failed"


def test_401_retries_with_a_new_token_only_when_the_old_one_had_worked():
    tokens = Tokens(3000)
    tokens.store(jwt({"iat": 0, "exp": 3600}), 0)
    # a token that never worked: the key or the token is refused, stop
    assert answer(patch("a"), 401, {"status": 401}, tokens, generation=1).kind == "fatal"
    # it worked once, then 401: expired early -> drop it and retry
    answer(patch("a"), 200, {}, tokens, generation=1)
    assert tokens.confirmed
    assert answer(patch("a"), 401, {"status": 401}, tokens, generation=1).kind == "retry"
    assert tokens.token is None
    # requests still in flight with the old token after a new one was issued: retry as well
    tokens.store(jwt({"iat": 0, "exp": 3600}), 10)
    assert answer(patch("a"), 401, {}, tokens, generation=1).kind == "retry"
    assert answer(patch("a"), 403, {}, tokens, generation=2).kind == "fatal"


def test_tokens_are_renewed_before_they_expire():
    tokens = Tokens(max_age=3000)
    tokens.store(jwt({"iat": 1000, "exp": 4600}), now=50.0)  # 1 hour: renewed at 50 min (max age)
    assert tokens.fresh(50.0 + 2999) and not tokens.fresh(50.0 + 3000)
    tokens.store(jwt({"iat": 1000, "exp": 1120}), now=0.0)  # 2 minutes: renewed 12 s early (10%)
    assert tokens.fresh(107.0) and not tokens.fresh(108.5)
    tokens.store("opaque-token", now=0.0)  # not a JWT: the max age applies
    assert tokens.fresh(2999.0) and not tokens.fresh(3000.0)
    assert jwt_lifetime(jwt({"iat": 10, "exp": 70})) == 60 and jwt_lifetime("x.y") is None


def test_describe_reads_splio_error_envelopes_and_429_bodies():
    assert describe(429, b'{"message": "API rate limit exceeded"}') == "Splio HTTP 429: API rate limit exceeded"
    assert describe(502, b"<html>bad gateway</html>") == "Splio HTTP 502: bad gateway (HTML page)"


def test_the_sender_waits_for_splio_ratelimit_reset_on_a_429_without_retry_after():
    destination = SplioDestination("http://127.0.0.1:1", {"api_key": "k-123456"}, {"transport": "api"})
    sender = HttpSender(destination)
    headers = CIMultiDict({"rateLimit-limit": "20", "rateLimit-remaining": "0", "rateLimit-reset": "1"})
    outcome = asyncio.run(sender.classify(patch("a"), 429, headers, b'{"message": "API rate limit exceeded"}'))
    assert (outcome.kind, outcome.throttled, outcome.retry_after) == ("retry", True, 1.0)


def test_a_redirect_of_authenticate_never_posts_the_api_key_elsewhere():
    """`POST /authenticate` carries the API key in its body: aiohttp followed a 307 / 308 with the
    same body to the host `Location` named. The redirect now fails the request, at once."""
    import asyncio

    from aiohttp import web

    from dinsync.destinations.base import TransportOptions
    from dinsync.sender import RetryPolicy

    key = "splio-key-5e4d3c2b1a"
    seen: list[bytes] = []

    async def steal(request):
        seen.append(await request.read())
        return web.json_response({"token": jwt({"iat": 0, "exp": 3600})})

    async def main():
        runners = []
        for handler in (steal, None):
            app = web.Application()
            if handler is None:  # Splio's address answers with a redirect to the other host
                other = f"http://127.0.0.1:{runners[0].addresses[0][1]}"

                async def handler(request):
                    raise web.HTTPTemporaryRedirect(other + "/authenticate")
            app.router.add_route("*", "/{tail:.*}", handler)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            runners.append(runner)
        try:
            destination = SplioDestination(f"http://127.0.0.1:{runners[1].addresses[0][1]}", {"api_key": key},
                                           {"transport": "api"})
            options = TransportOptions(retry_policy=RetryPolicy(base=0.01, cap=0.05))
            async with destination.make_transport(options) as sender:
                return await sender.deliver(bulk(["a@x.com"]))
        finally:
            for runner in runners:
                await runner.cleanup()

    delivered = asyncio.run(main())
    assert seen == []
    [problem] = delivered.problems
    assert problem.status == "failed" and "POST /authenticate: HTTP 307: redirect to http://127.0.0.1:" in problem.reason
    assert "failed after 1 attempt(s)" in problem.reason and key not in problem.reason


def test_the_api_tokens_of_many_runs_do_not_pile_up_in_the_redactor():
    """A long-running `serve` fetches a Splio API token a run, and each was registered as a secret
    for good: the redactor's pattern was rebuilt from every token ever seen at each new one (after
    1,000 runs, 0.3 s a registration, and growing). The latest tokens stay masked (the API key for
    good), the older ones are let go."""
    from dinsync import redaction

    dest = SplioDestination("http://127.0.0.1:9", {"api_key": "splio-key-0123456789"}, {"transport": "api"})
    redaction.register(*dest.secrets(), partial=True)
    dest._api = type("Api", (), {"tokens": Tokens(3000)})()  # (what SplioApiSender holds)
    before = len(redaction.registered())
    tokens = [jwt({"iat": 0, "exp": 3600, "run": run}) for run in range(200)]
    for run, token in enumerate(tokens):  # one run each: fetched, then the sender's redaction sees it
        dest._api.tokens.store(token, float(run))
        redaction.register(*dest.secrets(), partial=True)
        assert redaction.redact(f"token {token} refused") == "token *** refused"
    assert len(redaction.registered()) - before <= 64  # redaction.SESSION_KEEP
    assert redaction.redact("key splio-key-0123456789") == "key ***"


def test_bulk_items_naming_contacts_never_sent_acknowledge_none_of_ours():
    """A 207 whose items name other contacts (another request's answer, a gateway's replay) as many
    as the request's were taken by position: each of ours was acknowledged on the word about another
    contact, and entered the snapshot though Splio never said it got it. An item without a
    contact_id is still read by its position."""
    request = bulk(["a@x.com", "b@x.com"])
    out = answer(request, 207, {"time": 5, "errors": 0, "items": [
        {"contact_id": "x@other.com", "code": 201, "description": ""},
        {"contact_id": "y@other.com", "code": 201, "description": ""}]})
    assert {r.key: r.status for r in out.results} == {"a@x.com": "failed", "b@x.com": "failed"}
    out = answer(bulk(["a@x.com", "b@x.com"]), 207, {"items": [{"code": 201}, {"contact_id": None, "code": 201}]})
    assert {r.key: r.status for r in out.results} == {"a@x.com": "ok", "b@x.com": "ok"}


def test_bulk_items_naming_our_contact_in_another_spelling_are_read_by_their_position():
    """An item naming the contact at its position in another spelling of the same address (the
    domain in punycode, another Unicode normal form, another case, spaces around it) is that
    contact's: read by the name alone, such rows failed on every run (never settled). Another
    address at that position still acknowledges nothing."""
    keys = ["josé@exämple.com", "ame\u0301lie@x.com", "b@x.com"]
    named = ["josé@xn--exmple-cua.com", "amélie@x.com", " B@X.COM "]
    out = answer(bulk(keys), 207, {"items": [{"contact_id": c, "code": 201, "description": ""} for c in named]})
    assert {r.key: r.status for r in out.results} == dict.fromkeys(keys, "ok")
    out = answer(bulk(keys), 207, {"items": [{"contact_id": c, "code": 201, "description": ""}
                                             for c in ["josé@xn--other-cua.com", "amelie@x.com", "c@x.com"]]})
    assert {r.key: r.status for r in out.results} == dict.fromkeys(keys, "failed")


def test_a_patch_answered_with_json_that_is_no_contact_is_sent_again():
    """A 2xx JSON object that is no contact (a gateway's `{"message": "ok"}`, `{"status": "ok"}`,
    `{"data": null}`) acknowledged the PATCH: the row entered the snapshot with values Splio may never
    have got. Splio answers with the contact it edited: an object holding a contact's members."""
    for body in ({"message": "ok"}, {"status": "ok"}, {"data": None}, {"success": True}):
        outcome = answer(patch("a@x.com"), 200, body)
        assert outcome.kind == "retry", body
        assert "not Splio's answer to a PATCH" in outcome.reason
    assert answer(patch("a@x.com"), 200, {"id": 7, "email": "a@x.com", "custom_fields": []}).kind == "done"


def test_bulk_items_giving_one_contact_two_results_acknowledge_it_on_neither():
    """A 207 naming a contact twice, once created and once refused (a gateway's merged or replayed
    answer), acknowledged it on the first item read. An answer that contradicts itself says nothing
    of that contact: it fails, and is sent again; one said twice alike is read once."""
    request = bulk(["a@x.com", "b@x.com", "c@x.com"])
    out = answer(request, 207, {"items": [
        {"contact_id": "a@x.com", "code": 201, "description": ""},
        {"contact_id": "b@x.com", "code": 201, "description": ""},
        {"contact_id": "a@x.com", "code": 400, "description": "Custom field with id 5 and name ltv must be of type double."},
        {"contact_id": "b@x.com", "code": 201, "description": ""},
        {"contact_id": "c@x.com", "code": 201, "description": ""}]})
    got = {r.key: r for r in out.results}
    assert {k: r.status for k, r in got.items()} == {"a@x.com": "failed", "b@x.com": "ok", "c@x.com": "ok"}
    assert "two different results" in got["a@x.com"].reason


def test_a_patch_answered_204_is_sent_again():
    """Splio documents one answer to a PATCH, 200 with the contact. A 204 (No Content) is no Splio
    answer: from a proxy or a gateway that never passed the PATCH on, it acknowledged the row, and
    the contact never got its values (seen through a fault proxy: update-mode rows acknowledged for
    contacts that did not exist). It is sent again, as an empty 200 is."""
    outcome = answer(patch("a@x.com"), 204, b"")
    assert outcome.kind == "retry" and "not Splio's answer to a PATCH" in outcome.reason


def test_a_field_list_whose_elements_are_not_fields_is_read_again():
    """A fields list whose elements are no fields (an id that is no number, a list, an element that is
    no object; from a gateway or a cache between dinsync and Splio) was taken for Splio's answer: the
    pre-flight check then failed as an unexpected error (`int()` of the id, an unhashable id). It is
    read again, as a page is; ids given as digits still count."""
    def fields() -> Request:
        ctx = ReadContext("the universe's contact fields", needs="elements", item=field_element)
        return Request("other", "GET", "/data/fields/contacts", None, ["fields"], context=ctx)
    for elements in ([{"id": "abc", "name": "plan"}], [{"id": [5], "name": "plan"}], ["plan"], [None],
                     [{"id": 5, "name": ["plan"]}], [{"id": 5, "name": "plan", "is_system": []}]):
        outcome = answer(fields(), 200, {"elements": elements})
        assert outcome.kind == "retry", elements
        assert "not Splio's answer" in outcome.reason
    for elements in ([{"id": 5, "name": "plan"}], [{"id": "5", "name": "plan"}], []):
        assert answer(fields(), 200, {"elements": elements}).kind == "done", elements
