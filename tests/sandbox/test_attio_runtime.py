"""The Attio sandbox's records query, rate limits, faults, inspection and command line, over loopback."""
from __future__ import annotations

import asyncio
import http.client
import os
import re
import select
import signal
import subprocess
import sys
import time
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

import aiohttp
import orjson
import pytest

from dinsync.sandbox import AttioSandbox, SandboxThread, build_sandbox
from dinsync.sandbox.faults import delay, error, reset, reset_after_apply, respond, throttle

from .attio_helpers import ASSERT_PERSON, KEY, PEOPLE, Client, auth_header, start, values_body

QUERY = PEOPLE + "/query"


@pytest.fixture
def make():
    threads: list[SandboxThread] = []
    yield lambda **options: start(threads, **options)
    for thread in threads:
        thread.stop()


def emails(resp) -> list[str]:
    assert resp.status == 200, resp.body
    return [r["values"]["email_addresses"][0]["email_address"] for r in resp.body["data"]]


# ------------------------------------------------------------------ records query
@pytest.fixture
def crowd(make):
    thread, client = make(custom_attributes=["people:visits:number", "people:plan:select:free,pro",
                                             "people:vip:checkbox", "people:notes:text"])
    client.assert_company("acme.com")
    rows = [("ada@acme.com", "Lovelace, Ada", 10, "pro", True, "first"),
            ("bob@globex.com", "Builder, Bob", 3, "free", False, "second"),
            ("cy@acme.com", "Young, Cy", 25, "pro", False, "third")]
    for email, name, visits, plan, vip, notes in rows:
        assert client.assert_person(email, name=name, visits=visits, plan=plan, vip=vip, notes=notes,
                                    phone_numbers=["+447777777701" if vip else "+15558675309"]).status == 200
    return thread, client


@pytest.mark.parametrize("flt,expected", [
    ({"email_addresses": "ADA@acme.com"}, ["ada@acme.com"]),
    ({"email_addresses": {"email_address": {"$eq": "bob@globex.com"}}}, ["bob@globex.com"]),
    ({"email_addresses": {"email_address": "cy@acme.com"}}, ["cy@acme.com"]),
    ({"$or": [{"email_addresses": "ada@acme.com"}, {"email_addresses": {"email_address": {"$eq": "cy@acme.com"}}}]},
     ["ada@acme.com", "cy@acme.com"]),
    ({"$or": [{"email_addresses": " CY@acme.com "}, {"email_addresses": "ada@acme.com"},
              {"email_addresses": "nobody@acme.com"}]}, ["ada@acme.com", "cy@acme.com"]),  # by the index
    ({"email_addresses": {"email_domain": "acme.com"}}, ["ada@acme.com", "cy@acme.com"]),
    ({"email_addresses": {"email_local_specifier": {"$starts_with": "b"}}}, ["bob@globex.com"]),
    ({"name": "Ada Lovelace"}, ["ada@acme.com"]),
    ({"name": {"last_name": {"$contains": "UILD"}}}, ["bob@globex.com"]),
    ({"visits": {"$gte": 10}}, ["ada@acme.com", "cy@acme.com"]),
    ({"visits": {"$gt": 3, "$lt": 25}}, ["ada@acme.com"]),
    ({"plan": "pro", "vip": False}, ["cy@acme.com"]),
    ({"notes": {"$in": ["first", "third"]}}, ["ada@acme.com", "cy@acme.com"]),
    ({"phone_numbers": {"$starts_with": "+44"}}, ["ada@acme.com"]),
    ({"$not": {"plan": "pro"}}, ["bob@globex.com"]),
    ({"$and": [{"plan": "pro"}, {"$not": {"name": {"first_name": "Cy"}}}]}, ["ada@acme.com"]),
    ({"job_title": {"$not_empty": True}}, "filter_error"),  # $not_empty is not documented for text
    ({"email_addresses": {"$in": ["ada@acme.com"]}}, "filter_error"),  # $in is not documented for emails
    ({"nope": "x"}, "filter_error"),
    ({"path": [["people", "company"], ["companies", "name"]], "constraints": {"value": "Acme"}}, "filter_error"),
    ({"visits": {"$between": [1, 2]}}, "filter_error"),
    ({"$or": []}, "filter_error"),
])
def test_query_filters(crowd, flt, expected):
    thread, client = crowd
    resp = client.post(QUERY, {"filter": flt})
    if expected == "filter_error":
        assert (resp.status, resp.code) == (400, "filter_error")
    else:
        assert emails(resp) == expected


def test_a_lookup_of_many_emails_finds_what_testing_every_record_finds(make, monkeypatch):
    """An `$or` of email equalities is answered from the uniqueness index (a lookup's shape): the
    filter tests only the records the index names, not every record (at 2,000 records that took
    ~0.1 s of the event loop per query, and writes arriving meanwhile were throttled in a bunch).
    The same terms under `$and` test every record: both give the same records in the same order."""
    from dinsync.sandbox.attio import sandbox as attio_sandbox

    tested: list[int] = []
    compile_filter = attio_sandbox.compile_filter

    def counting(*args, **kwargs):
        keep = compile_filter(*args, **kwargs)
        tested.append(0)

        def test(record):
            tested[-1] += 1
            return keep(record)
        return test

    monkeypatch.setattr(attio_sandbox, "compile_filter", counting)
    thread, client = make()
    for i in range(120):
        assert client.assert_person(f"p{i}@acme.com", name=f"P{i}, P").status == 200
    wanted = [f"P{i}@ACME.com" for i in range(0, 120, 7)] + ["absent@acme.com", "p3@acme.com"]
    terms = [{"email_addresses": e} for e in wanted]
    indexed = emails(client.post(QUERY, {"filter": {"$or": terms}, "limit": 500}))
    scanned = emails(client.post(QUERY, {"filter": {"$and": [{"$or": terms}]}, "limit": 500}))
    assert indexed == scanned == [f"p{i}@acme.com" for i in range(120) if i % 7 == 0 or i == 3]
    assert tested[-2:] == [len(indexed), 120]  # the index's candidates, then every record


def test_query_by_record_id_reference_sorts_and_paging(crowd):
    thread, client = crowd
    everyone = client.post(QUERY, {}).body["data"]
    ids = [r["id"]["record_id"] for r in everyone]
    picked = client.post(QUERY, {"filter": {"record_id": {"$in": ids[:2]}}})
    assert emails(picked) == ["ada@acme.com", "bob@globex.com"]
    acme = thread.call(thread.sandbox.find_company, "acme.com")["id"]["record_id"]
    client.assert_person("ada@acme.com", company="acme.com")
    by_company = {"company": {"target_object": "companies", "target_record_id": {"$in": [acme]}}}
    assert emails(client.post(QUERY, {"filter": by_company})) == ["ada@acme.com"]
    sorted_desc = client.post(QUERY, {"sorts": [{"direction": "desc", "attribute": "visits"}]})
    assert emails(sorted_desc) == ["cy@acme.com", "ada@acme.com", "bob@globex.com"]
    by_last = client.post(QUERY, {"sorts": [{"direction": "asc", "attribute": "name", "field": "last_name"}]})
    assert emails(by_last) == ["bob@globex.com", "ada@acme.com", "cy@acme.com"]
    assert emails(client.post(QUERY, {"limit": 1, "offset": 1})) == ["bob@globex.com"]
    assert client.post(QUERY, {"limit": "1"}).code == "validation_type"
    assert client.post(QUERY, {"sorts": [{"direction": "up", "attribute": "visits"}]}).code == "validation_type"
    assert client.post(QUERY, {"filter": {}, "page": 2}).code == "validation_type"
    assert client.post(QUERY, {"sorts": [{"direction": "asc", "path": [["people", "company"]]}]}).code == \
        "filter_error"


def test_query_default_limit_is_500(make):
    thread, client = make()
    requests = [("POST", PEOPLE, values_body(email_addresses=[f"u{i}@bulk.example"])) for i in range(503)]
    assert {r.status for r in client.burst(requests)} == {200}
    assert len(client.post(QUERY, {}).body["data"]) == 500
    assert len(client.post(QUERY, {"offset": 500}).body["data"]) == 3
    thread2, client2 = make(max_query_limit=100)
    assert client2.post(QUERY, {"limit": 101}).code == "validation_type"


# ------------------------------------------------------------------ rate limits
def _retry_after(resp) -> datetime:
    when = parsedate_to_datetime(resp.headers["Retry-After"])
    assert when.tzinfo is not None and resp.headers["Retry-After"].endswith("GMT")
    return when


def _writes(n: int, tag: str) -> list:
    return [("PUT", ASSERT_PERSON, values_body(email_addresses=[f"{tag}{i}@rate.example"])) for i in range(n)]


def test_write_burst_over_25_per_second_gets_429_with_http_date(make):
    thread, client = make(limits=True)
    before = time.time()
    results = client.burst(_writes(40, "w"))
    after = time.time()
    statuses = [r.status for r in results]
    assert statuses.count(200) == 25 and statuses.count(429) == 15
    for resp in results:
        if resp.status == 429:
            assert resp.body == {"status_code": 429, "type": "rate_limit_error", "code": "rate_limit_exceeded",
                                 "message": "Rate limit exceeded, please try again later"}
            # the whole second at which the oldest counted request leaves the 1 s window
            assert before < _retry_after(resp).timestamp() <= after + 2
    assert count_people(thread) == 25  # throttled requests were not processed
    assert thread.stats()["responses_429"] == 15 and thread.stats()["created"] == {"people": 25}
    # reads have their own budget
    assert client.get("/v2/objects").status == 200


def count_people(thread: SandboxThread) -> int:
    return thread.call(thread.sandbox.count, "people")


def test_requests_under_the_limit_never_get_429(make):
    thread, client = make(limits=True)
    for round_ in range(3):
        results = client.burst(_writes(25, f"r{round_}-"))
        assert {r.status for r in results} == {200}
        time.sleep(1.05)  # the 1 s window has moved past every request of this round
    assert count_people(thread) == 75 and thread.stats()["responses_429"] == 0
    reads = client.burst([("GET", "/v2/objects/people/attributes", None)] * 100)
    assert {r.status for r in reads} == {200}


def test_retry_after_date_is_honoured(make):
    thread, client = make(limits=True, rate_limits={"read": 100, "write": 2})
    results = client.burst(_writes(4, "h"))
    limited = [r for r in results if r.status == 429]
    assert len(limited) == 2
    when = max(_retry_after(r) for r in limited)
    pause = (when - datetime.now(timezone.utc)).total_seconds()
    time.sleep(max(pause, 0) + 0.05)
    assert {r.status for r in client.burst(_writes(2, "again"))} == {200}


def test_queries_are_reads_unless_configured(make):
    thread, client = make(limits=True)
    assert {r.status for r in client.burst([("POST", QUERY, {})] * 60)} == {200}
    thread2, client2 = make(limits=True, query_is_read=False)
    statuses = [r.status for r in client2.burst([("POST", QUERY, {})] * 30)]
    assert statuses.count(429) == 5


def test_limits_are_per_token_fixed_window_and_switchable(make):
    thread, client = make(limits=True, token_list=(KEY, "second"))
    assert {r.status for r in client.burst(_writes(25, "a"))} == {200}
    assert {r.status for r in client.burst(_writes(25, "b"), token="second")} == {200}
    thread2, client2 = make(limits=True, window="fixed")
    started = time.time()
    results = client2.burst(_writes(100, "f"))
    windows = int(time.time()) - int(started) + 1  # whole seconds the burst touched (a busy machine spreads it)
    limited = [r for r in results if r.status == 429]
    assert max(1, 100 - 25 * windows) <= len(limited) <= 100 - 25
    for resp in limited:  # a fixed window frees at the next whole second
        assert _retry_after(resp).timestamp() - time.time() <= 1.5
    thread3, client3 = make(limits=False)
    assert {r.status for r in client3.burst(_writes(60, "n"))} == {200}


# ------------------------------------------------------------------ faults
def _raw_put(url: str, email: str) -> str:
    """The outcome seen by a client: a status, or the connection error's class name.

    http.client, because aiohttp silently retries an idempotent request (PUT) once after a reset,
    which would hide the reset from the test (a client author should know this too)."""
    conn = http.client.HTTPConnection("127.0.0.1", int(url.rsplit(":", 1)[1]), timeout=10)
    try:
        conn.request("PUT", ASSERT_PERSON, body=orjson.dumps(values_body(email_addresses=[email])),
                     headers={"Content-Type": "application/json", **auth_header(KEY)})
        resp = conn.getresponse()
        resp.read()
        return str(resp.status)
    except (ConnectionError, http.client.HTTPException) as exc:
        return type(exc).__name__
    finally:
        conn.close()


def test_resets_before_and_after_applying_the_write(make):
    thread, client = make()
    thread.script("assert", reset())
    outcome = _raw_put(thread.url, "before@acme.com")
    assert not outcome.isdigit()
    assert thread.call(thread.sandbox.find_person, "before@acme.com") is None
    thread.script("assert", reset_after_apply())
    outcome = _raw_put(thread.url, "after@acme.com")
    assert not outcome.isdigit()  # the client saw a connection error ...
    assert thread.call(thread.sandbox.find_person, "after@acme.com") is not None  # ... yet the record exists
    stats = thread.stats()
    assert stats["created"] == {"people": 1} and stats["faults"] == {"reset": 1, "reset_after_apply": 1}
    log = thread.call(lambda: list(thread.sandbox.log))
    assert [(e.endpoint, e.status, e.outcome, e.fault) for e in log] == [
        ("assert", None, None, "reset"), ("assert", None, "created", "reset_after_apply")]
    assert _raw_put(thread.url, "after@acme.com") == "200"  # a retry updates the same record
    assert thread.stats()["updated"] == {"people": 1} and count_people(thread) == 1


def test_error_pages_throttles_scripted_answers_and_delays(make):
    thread, client = make()
    thread.script("assert", error(503))
    resp = client.assert_person("e@acme.com")
    assert resp.status == 503 and "<html>" in resp.body and count_people(thread) == 0
    thread.script("query", throttle(retry_after=2))
    resp = client.post(QUERY, {})
    assert resp.status == 429 and resp.code == "rate_limit_exceeded"
    assert 0 < (parsedate_to_datetime(resp.headers["Retry-After"]).timestamp() - time.time()) <= 3.5
    thread.script(None, respond(500, {"status_code": 500, "type": "internal_error", "code": "x", "message": "boom"}))
    assert client.get("/v2/objects").status == 500
    thread.script("get_object", delay(0.8))
    with pytest.raises((asyncio.TimeoutError, aiohttp.ServerTimeoutError)):
        client.get("/v2/objects/people", timeout=0.3)
    time.sleep(0.6)  # let the slow answer finish before the sandbox stops
    thread.set_faults(error_rate=1.0, error_statuses=(502,))
    assert client.get("/v2/objects").status == 502
    thread.set_faults(error_rate=0.0, latency=0.05, jitter=0.01)
    assert client.get("/v2/objects").status == 200
    assert thread.stats()["responses_429"] == 1


# ------------------------------------------------------------------ inspection
def test_inspection_log_counters_and_reset(make):
    thread, client = make(custom_attributes=["people:plan:select:free,pro"])
    client.assert_person("a@acme.com", plan="pro")
    client.assert_person("a@acme.com", plan="free")
    client.assert_company("acme.com", name="Acme")
    client.post(QUERY, {"filter": {"plan": "free"}})
    client.assert_person("bad", plan="pro")
    sandbox = thread.sandbox
    log = thread.call(lambda: list(sandbox.log))
    assert [(e.method, e.endpoint, e.object, e.status, e.outcome) for e in log] == [
        ("PUT", "assert", "people", 200, "created"), ("PUT", "assert", "people", 200, "updated"),
        ("PUT", "assert", "companies", 200, "created"), ("POST", "query", "people", 200, None),
        ("PUT", "assert", "people", 400, None)]
    stats = thread.stats()
    assert stats["requests_by_endpoint"] == {"assert": 4, "query": 1} and stats["requests"] == 5
    assert stats["created"] == {"people": 1, "companies": 1} and stats["updated"] == {"people": 1}
    assert stats["records"] == {"people": 1, "companies": 1}
    records = thread.call(sandbox.records, "people")
    assert len(records) == 1 and thread.call(sandbox.plain, records[0])["plan"] == "free"
    rid = records[0]["id"]["record_id"]
    assert thread.call(sandbox.record, "people", rid)["id"]["record_id"] == rid
    assert thread.call(sandbox.find_person, " A@ACME.com ")["id"]["record_id"] == rid
    assert thread.call(sandbox.find_company, "https://acme.com/x")["values"]["name"][0]["value"] == "Acme"
    records[0]["values"]["plan"].clear()  # copies: editing them changes nothing
    assert thread.call(sandbox.plain, thread.call(sandbox.record, "people", rid))["plan"] == "free"
    thread.reset()
    assert thread.stats() == {"requests": 0, "requests_by_endpoint": {}, "responses_429": 0, "faults": {},
                              "created": {}, "updated": {}, "auto_created": {},
                              "records": {"people": 0, "companies": 0}}
    assert client.assert_person("b@acme.com", plan="pro").status == 200  # declarations survive a reset


def test_repr_and_log_never_show_tokens(make):
    thread, client = make()
    client.get("/v2/objects", token="wrong-secret")
    assert KEY not in repr(thread.sandbox) and "wrong-secret" not in repr(thread.call(lambda: list(thread.sandbox.log)))


def test_build_sandbox_by_name():
    sandbox = build_sandbox("attio", api_key="k1", api_keys=["k2"], limits=False,
                            custom_attributes=["people:plan:select:a,b"])
    assert isinstance(sandbox, AttioSandbox) and sandbox.options.limits is False
    with SandboxThread(sandbox) as thread:
        for key in ("k1", "k2"):
            assert Client(thread.url, key).get("/v2/objects/people/attributes/plan").status == 200
    with pytest.raises(ValueError):
        build_sandbox("attio")  # no token
    with pytest.raises(ValueError):
        build_sandbox("attio", api_key="k", window="hourly")


# ------------------------------------------------------------------ command line
def _read_line(proc: subprocess.Popen, timeout: float = 15.0) -> str:
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, "the sandbox printed nothing"
    return proc.stdout.readline()


def test_module_entry_point_serves_attio_and_stops_on_sigterm():
    args = [sys.executable, "-m", "dinsync.sandbox", "attio", "--port", "0", "--api-key", KEY, "--no-limits",
            "--latency", "0", "--custom-attribute", "people:plan:select:free,pro,team",
            "--custom-attribute", "people:customer_id:text:unique"]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = _read_line(proc)
        match = re.fullmatch(r"listening (http://127\.0\.0\.1:\d+)\n", line)
        assert match, line
        client = Client(match.group(1))
        assert client.assert_person("cli@acme.com", plan="team", customer_id="c1").status == 200
        assert client.assert_person("cli@acme.com", plan="gold").code == "value_not_found"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
        assert proc.returncode == 0
        assert KEY not in out + err + line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_module_entry_point_rejects_bad_declarations():
    env = {k: v for k, v in os.environ.items() if k != "DINSYNC_SANDBOX_API_KEY"}
    proc = subprocess.run([sys.executable, "-m", "dinsync.sandbox", "attio", "--port", "0", "--api-key", "k",
                           "--custom-attribute", "companies:code:text:unique"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 2 and "unique" in proc.stderr
    proc = subprocess.run([sys.executable, "-m", "dinsync.sandbox", "attio", "--port", "0"],
                          capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 2 and "--api-key" in proc.stderr


def test_a_fixed_window_retry_after_names_the_second_the_window_frees(monkeypatch):
    """The limiter says the window frees in `wait` seconds, read on its clock; the response reads
    the clock again a few microseconds later: the date is still that second, not the next one."""
    from email.utils import parsedate_to_datetime

    from dinsync.sandbox.attio import sandbox as attio_sandbox

    box = attio_sandbox.AttioSandbox(window="fixed")
    limiter_now = 1_796_121_401.25
    wait = 1_796_121_402 - limiter_now  # the next whole second, on the limiter's clock
    monkeypatch.setattr(attio_sandbox.time, "time", lambda: limiter_now + 0.000004)
    resp = box._too_many_requests(wait)
    assert resp.status == 429
    assert parsedate_to_datetime(resp.headers["Retry-After"]).timestamp() == 1_796_121_402
