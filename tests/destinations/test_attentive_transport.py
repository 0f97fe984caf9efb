"""The Attentive transport against the sandbox on loopback: the probe, bulk jobs pending then settled,
outcomes read back from tokens alone by a later transport, and pacing on the announced limit."""
from __future__ import annotations

import asyncio

import polars as pl
import pytest

from dinsync.destinations.attentive import AttentiveDestination
from dinsync.destinations.base import SyncSpec, TransportOptions
from dinsync.mapping import FieldMapping, KeyMapping, map_batch
from dinsync.sandbox import AttentiveSandbox, SandboxThread
from dinsync.sandbox.faults import respond

KEY = "attn-transport-key-3e8a71"
SYNC = SyncSpec("attentive_users", "users", "update", "email", ["firstName", "Tier"], [False, True])


@pytest.fixture
def sandbox():
    sb = AttentiveSandbox([KEY])
    thread = SandboxThread(sb)
    thread.start()
    thread.call(sb.seed_subscribers, 10)
    yield sb, thread
    thread.stop()


def destination(url: str, **options) -> AttentiveDestination:
    return AttentiveDestination(url, {"api_key": KEY}, options)


def units(d: AttentiveDestination, emails: list[str], tier: list[str | None] | None = None):
    n = len(emails)
    plan = pl.DataFrame({"_key": emails, "_op": ["added"] * n, "v0": [f"N-{e}" for e in emails], "x0": [True] * n,
                         "v1": tier or ["gold"] * n, "x1": [True] * n})
    fields = [FieldMapping(0, "firstName", "string"), FieldMapping(1, "Tier", "auto")]
    mapped = map_batch(plan, KeyMapping("email", "email"), fields, keep_field_text=True).frame
    return d.prepare(mapped, SYNC).requests


def run(coro):
    return asyncio.run(coro)


# "COMPLETED_WITH_ERRORS": the spec's statuses are "common values"; a job reporting another one with
# its results url settles from the file (it was polled as running until the outcome timeout, its
# rows left pending on every run)
@pytest.mark.parametrize("completed_status", ["COMPLETED", "COMPLETED_WITH_ERRORS"])
def test_bulk_records_stay_pending_until_the_job_completes_then_settle(sandbox, completed_status):
    sb, thread = sandbox
    thread.call(setattr, sb.options, "bulk_job_seconds", 0.5)
    thread.call(setattr, sb.options, "completed_status", completed_status)
    d = destination(thread.url)
    emails = [f"subscriber{i}@example.com" for i in range(5)]

    async def go():
        async with d.make_transport(TransportOptions()) as t:
            await t.start(SYNC)
            [unit] = units(d, emails)
            delivered = await t.deliver(unit)
            assert (delivered.ok, delivered.problems) == ([], [])
            [(token, keys)] = delivered.pending.items()
            assert token.startswith("attentive-bulk:email:") and keys == emails
            early = t.ready()  # the job is not done yet
            assert (early.ok, early.problems) == ([], [])
            return await t.settle(delivered.pending, 10.0)

    settled = run(go())
    assert sorted(settled.ok) == sorted(emails) and settled.problems == [] and settled.pending == {}
    assert thread.call(sb.get_subscriber, email=emails[2])["attributes"] == {"firstName": f"N-{emails[2]}"}
    assert thread.call(sb.get_subscriber, email=emails[2])["custom"] == {"Tier": "gold"}


def test_unreadable_job_statuses_fail_a_job_only_three_in_a_row(sandbox):
    """Two unreadable status answers, a readable one, two more: the job is still followed and
    settles (three in its whole life failed all its rows before)."""
    sb, thread = sandbox
    thread.call(setattr, sb.options, "bulk_job_seconds", 3.0)
    d = destination(thread.url, job_poll_seconds=0.1)
    emails = [f"subscriber{i}@example.com" for i in range(3)]
    unreadable = respond(200, {"bulkJobId": "x", "status": ""})
    polls = lambda: thread.stats()["requests_by_endpoint"].get("getBulkJobStatus", 0)

    async def go():
        async with d.make_transport(TransportOptions()) as t:
            await t.start(SYNC)
            thread.script("getBulkJobStatus", unreadable, times=2)
            delivered = await t.deliver(units(d, emails)[0])
            settling = asyncio.ensure_future(t.settle(delivered.pending, 15.0))
            while polls() < 3:  # two unreadable, then one IN_PROGRESS
                await asyncio.sleep(0.02)
            thread.script("getBulkJobStatus", unreadable, times=2)
            return await settling

    settled = run(go())
    assert sorted(settled.ok) == emails and settled.problems == [], settled.problems
    assert polls() >= 6


def test_a_later_transport_reads_an_earlier_jobs_results_from_the_tokens_alone(sandbox):
    sb, thread = sandbox
    thread.call(setattr, sb.options, "bulk_job_seconds", 3600.0)  # does not finish during the "run"
    thread.call(setattr, sb.options, "bulk_validation", "record")
    thread.call(sb.define_property, "Tier", ["gold", "silver"])
    d = destination(thread.url, custom_attributes_via="v2")
    emails = ["subscriber1@example.com", "subscriber2@example.com", "subscriber3@example.com"]

    async def first_run():
        async with d.make_transport(TransportOptions()) as t:
            await t.start(SYNC)
            [unit] = units(d, emails, tier=["gold", "diamond", "silver"])
            delivered = await t.deliver(unit)
            settled = await t.settle(delivered.pending, 0.3)  # still running when the run gives up
            assert (settled.ok, settled.problems, settled.pending) == ([], [], delivered.pending)
            return list(delivered.pending)

    tokens = run(first_run())
    assert len(tokens) == 1
    thread.call(sb.finish_jobs)

    async def later_run():
        async with destination(thread.url).make_transport(TransportOptions()) as t:  # nothing kept in memory
            return await t.resolve(tokens + ["attentive-bulk:email:no-such-job", "someone-elses-token"])

    resolved = run(later_run())
    assert sorted(resolved.ok) == ["subscriber1@example.com", "subscriber3@example.com"]
    [rejected] = resolved.problems
    assert (rejected.key, rejected.status) == ("subscriber2@example.com", "rejected")
    assert "not one of the values defined" in rejected.reason


def test_results_in_another_order_without_index_settle_each_record(sandbox):
    """A results file laid out otherwise than the sandbox's default (undocumented format): each
    record still gets its own outcome, the refused one alone is rejected."""
    sb, thread = sandbox
    for name, value in (("results_order", "reversed"), ("results_index", False), ("bulk_validation", "record")):
        thread.call(setattr, sb.options, name, value)
    thread.call(sb.define_property, "Tier", ["gold", "silver"])
    d = destination(thread.url, custom_attributes_via="v2")
    emails = [f"subscriber{i}@example.com" for i in range(4)]

    async def go():
        async with d.make_transport(TransportOptions()) as t:
            await t.start(SYNC)
            [unit] = units(d, emails, tier=["gold", "diamond", "silver", "gold"])
            delivered = await t.deliver(unit)
            return await t.settle(delivered.pending, 10.0)

    settled = run(go())
    assert sorted(settled.ok) == [emails[0], emails[2], emails[3]] and settled.pending == {}
    [refused] = settled.problems
    assert (refused.key, refused.status) == (emails[1], "rejected")
    assert "not one of the values defined" in refused.reason


def test_probe_learns_what_an_unknown_user_lookup_answers(sandbox):
    sb, thread = sandbox

    async def probe():
        async with destination(thread.url).make_transport(TransportOptions()) as t:
            await t.start(SYNC)
            return t.empty_list_is_known, t.stats.probe

    assert run(probe()) == (True, "404 for unknown users")
    thread.call(setattr, sb.options, "unknown_attributes_lookup", "empty")
    assert run(probe()) == (False, "[] for unknown users")


def test_a_base_url_that_is_not_attentive_stops_the_run_before_any_lookup(sandbox):
    sb, thread = sandbox
    from dinsync.errors import DinsyncError

    async def start():
        async with destination(thread.url + "/not-here").make_transport(TransportOptions()) as t:
            await t.start(SYNC)

    with pytest.raises(DinsyncError, match="GET /v1/me did not answer as Attentive does"):
        run(start())
    assert thread.stats()["requests_by_endpoint"].get("getCustomAttributes", 0) == 0


# A proxy's empty 200 (or a text page) answered to the first request is a glitch, as on every other
# request: asked again, not the end of the run (it failed every run it met, exit 1, nothing sent)
@pytest.mark.parametrize("body", [b"", b"OK", b"[]", b"null", b'"ok"'])
def test_a_glitch_answering_the_me_request_is_asked_again(sandbox, body):
    sb, thread = sandbox
    thread.script("getMe", respond(200, body, {"Content-Type": "text/plain"}))

    async def start():
        async with destination(thread.url).make_transport(TransportOptions()) as t:
            await t.start(SYNC)
            return t.stats.probe

    assert run(start()) == "404 for unknown users"
    assert thread.stats()["requests_by_endpoint"]["getMe"] == 2


# Attentive answering nothing but 5xx to GET /v1/me (an outage) is no sign of a wrong base_url or
# key: the run says the platform could not be reached (DestinationUnreachableError: `validate`
# leaves the mapping unchecked), not "did not answer as Attentive does ... a private-app key?"
def test_an_outage_on_the_me_request_says_attentive_could_not_be_reached(sandbox):
    sb, thread = sandbox
    from dinsync.errors import DestinationUnreachableError
    from dinsync.sandbox.faults import error
    from dinsync.sender.retry import RetryPolicy

    thread.script("getMe", error(503), times=3)

    async def start():
        options = TransportOptions(retry_policy=RetryPolicy(max_attempts=3, base=0.01, cap=0.02))
        async with destination(thread.url).make_transport(options) as t:
            await t.start(SYNC)

    with pytest.raises(DestinationUnreachableError, match="could not reach Attentive") as raised:
        run(start())
    assert "private-app key" not in (raised.value.hint or "")
    assert "HTTP 503" in raised.value.message


def test_the_sender_paces_on_the_limit_the_sandbox_announces(sandbox):
    sb, thread = sandbox
    thread.call(lambda: sb.options.rate_limits.__setitem__("getSubscriptions", 25))
    d = destination(thread.url, existence_check="subscriptions")

    async def lookups():
        async with d.make_transport(TransportOptions()) as t:
            await t.start(SYNC)
            requests = d.lookup_requests([f"k{i}" for i in range(3)],
                                         [f"subscriber{i}@example.com" for i in range(3)], SYNC)
            await asyncio.gather(*(t.deliver(r) for r in requests))
            return t.sender.limiter("get_subscriptions").rate

    assert run(lookups()) == 25.0  # the documented 10/s gave way to what the server says it allows


@pytest.mark.parametrize("concurrency", [2, 5])
def test_concurrency_in_dinsync_yml_caps_the_requests_attentive_sees_at_once(sandbox, concurrency):
    """`concurrency` (dinsync.yml) is the sockets of every destination; Attentive's transport ignored
    it (each endpoint's own cap alone: 32 lookups at once against a proxy or a company that asked for 2)."""
    sb, thread = sandbox
    now = {"at_once": 0, "most": 0}
    guarded = sb._guarded

    async def counting(request, handler, endpoint):
        now["at_once"] += 1
        now["most"] = max(now["most"], now["at_once"])
        try:
            await asyncio.sleep(0.1)  # a slow answer: the client would start more meanwhile
            return await guarded(request, handler, endpoint)
        finally:
            now["at_once"] -= 1

    thread.call(setattr, sb, "_guarded", counting)
    d = destination(thread.url)
    n = 24

    async def lookups():
        async with d.make_transport(TransportOptions(concurrency=concurrency)) as t:
            await t.start(SYNC)
            requests = d.lookup_requests([f"k{i}" for i in range(n)], [f"subscriber{i}@example.com" for i in range(n)],
                                         SYNC)
            return await asyncio.gather(*(t.deliver(r) for r in requests))

    delivered = run(lookups())
    assert len(delivered) == n and thread.call(lambda: sb.requests["getCustomAttributes"]) >= n
    assert 1 < now["most"] <= concurrency, now


def test_the_default_sockets_leave_room_for_the_endpoints_of_an_update_run_to_follow_the_latency():
    from dinsync.sender.inflight import CEILING_FACTOR

    caps = AttentiveDestination.limits
    at_once = ("get_custom_attributes", "bulk_user_attributes", "bulk_job")  # lookups, bulk writes, job polls
    assert AttentiveDestination.default_concurrency >= CEILING_FACTOR * sum(caps[e].max_concurrency for e in at_once)
