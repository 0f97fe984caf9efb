"""Notification channels against loopback receivers: payload shapes, secrets masked, retries with
backoff, a failing channel that never raises, and per-channel event filters."""
from __future__ import annotations

import pytest

from dinsync import redaction
from dinsync.config.models import SlackChannel, WebhookChannel
from dinsync.ops.notify import Notice, Notifier
from tests.ops.receiver import start_receiver
from tests.stalled_dns import stalled_name_lookups

SECRET = "hook-token-9f8e7d6c5b"


@pytest.fixture
def receiver():
    rec, thread = start_receiver()
    yield rec, thread
    thread.stop()


def channels(url: str, **kw):
    return [WebhookChannel(type="webhook", url=f"{url}/hook", headers={"Authorization": f"Bearer {SECRET}"}, **kw),
            SlackChannel(type="slack", webhook_url=f"{url}/services/T000/B000/{SECRET}", **kw)]


def notice(**kw) -> Notice:
    run = {"sync": "users", "run_id": "r1", "status": "failed", "added": 3, "changed": 1, "removed": 0, "sent": 4,
           "rejected": 0, "failed": 4, "error": f"iterable refused the key {SECRET}", "warnings": []}
    return Notice(**{"event": "failed", "sync": "users", "state": "failed", "previous_state": "ok",
                     "message": f"users failed: key {SECRET} refused <here> & there", "run": run, **kw})


def test_webhook_and_slack_payloads_without_secrets(receiver):
    rec, thread = receiver
    redaction.register(SECRET)
    sleeps = []

    async def sleep(seconds):
        sleeps.append(seconds)

    deliveries = Notifier(channels(thread.url), project="shop", sleep=sleep).send(notice())
    assert [(d.channel, d.ok, d.attempts) for d in deliveries] == [("webhook#1", True, 1), ("slack#2", True, 1)]
    by_path = {r["path"]: r for r in rec.received}
    hook = by_path["/hook"]
    assert hook["headers"]["Authorization"] == f"Bearer {SECRET}"  # the header is for the receiver
    assert hook["headers"]["Content-Type"] == "application/json"
    body = hook["json"]
    assert {k: body[k] for k in ("event", "sync", "state", "previous_state", "project")} == \
        {"event": "failed", "sync": "users", "state": "failed", "previous_state": "ok", "project": "shop"}
    assert body["run"]["run_id"] == "r1" and body["at"].endswith("Z") and body["pause"] is None
    assert body["message"] == "users failed: key *** refused <here> & there"
    slack = by_path[f"/services/T000/B000/{SECRET}"]["json"]
    assert set(slack) == {"text", "blocks"} and slack["text"].startswith("dinsync: users failed: ")
    assert [b["type"] for b in slack["blocks"]] == ["section", "section", "context"]
    assert "&lt;here&gt; &amp; there" in slack["blocks"][0]["text"]["text"]
    assert "`r1`" in slack["blocks"][1]["text"]["text"]
    for r in rec.received:
        assert SECRET.encode() not in r["raw"]
    assert sleeps == []


@pytest.mark.parametrize("event,state,message,pause", [
    ("failed", "failed", "users failed: boom", None),
    ("warning", "warning", "users finished with warnings: the run took 2.5 seconds", None),
    ("paused", "paused", "users paused by hand: CRM migration",
     {"paused_by": "hand", "culprit": "hand", "reason": "CRM migration"}),
    ("paused", "paused", "users paused by itself: column 'plan' is not a column of model customers",
     {"paused_by": "auto", "culprit": "column", "reason": "column 'plan' is not a column of model customers"}),
])
def test_each_text_names_the_sync_once(receiver, event, state, message, pause):
    """The notice's message starts with the sync's name: Slack's fallback text and its message
    section say it once (they used to read "users failed: users failed: ..."), as the webhook's
    message does; a pause by hand is not "hand (hand)"."""
    rec, thread = receiver
    assert all(d.ok for d in Notifier(channels(thread.url)).send(
        Notice(event, "users", state, "ok", message, pause=pause)))
    by_path = {r["path"]: r["json"] for r in rec.received}
    slack, hook = by_path[f"/services/T000/B000/{SECRET}"], by_path["/hook"]
    assert slack["text"] == f"dinsync: {message}"
    section = slack["blocks"][0]["text"]["text"]
    assert section.count("users") == 1 and section.endswith(message.replace("users", "*users*", 1))
    assert hook["message"] == message and hook["message"].count("users") == 1
    details = slack["blocks"][1]["text"]["text"]
    if pause is not None:
        assert details.endswith("*paused by*: hand" if pause["paused_by"] == "hand" else "*paused by*: auto (column)")


def test_a_message_without_the_sync_name_is_prefixed_once(receiver):
    rec, thread = receiver
    Notifier(channels(thread.url)[1:]).send(Notice("failed", "users", "failed", "ok", "boom"))
    [slack] = [r["json"] for r in rec.received]
    assert slack["text"] == "dinsync: users failed: boom"
    assert slack["blocks"][0]["text"]["text"] == ":red_circle: dinsync: *users* failed: boom"


def test_retries_with_backoff_then_delivers(receiver):
    rec, thread = receiver
    rec.scripts["/hook"] = [(500, {}), (429, {"Retry-After": "0"}), (503, {})]
    sleeps = []

    async def sleep(seconds):
        sleeps.append(seconds)

    [d] = Notifier(channels(thread.url)[:1], sleep=sleep, backoff_base=0.01).send(notice())
    assert (d.ok, d.attempts) == (True, 4) and len(rec.received) == 4
    assert len(sleeps) == 3 and all(0 <= s <= 0.3 for s in sleeps)


def test_a_retry_after_that_says_now_backs_off_as_without_one(receiver):
    """A 503 (or 429) whose Retry-After says "now" (0, a date in the past: a receiver's clock
    behind ours) names no wait: the backoff applies, as the sender does for a platform's answers.
    It was asked again within 0.25 s each time, a channel's attempts spent in under a second."""
    rec, thread = receiver
    rec.scripts["/hook"] = [(503, {"Retry-After": "0"}), (503, {"Retry-After": "Thu, 01 Jan 2026 00:00:00 GMT"})]
    sleeps = []

    async def sleep(seconds):
        sleeps.append(seconds)

    [d] = Notifier(channels(thread.url)[:1], sleep=sleep, backoff_base=1000.0, backoff_cap=1e6).send(notice())
    assert (d.ok, d.attempts) == (True, 3)
    # the backoff's full jitter: uniform up to 1000 s, then 2000 s (both under 0.25 s: odds ~3e-8)
    assert len(sleeps) == 2 and max(sleeps) > 0.25, sleeps


def test_a_retry_after_date_is_read_against_the_receivers_clock(receiver):
    """A Retry-After date is the receiver's clock (its `Date`): one 10 minutes ahead of ours asking
    for 2 s was waited the cap (30 s) before each attempt; read against its `Date`, as the sender does."""
    import datetime as dt
    from email.utils import format_datetime

    rec, thread = receiver
    theirs = dt.datetime.now(dt.timezone.utc).replace(microsecond=0) + dt.timedelta(minutes=10)
    rec.scripts["/hook"] = [(503, {"Date": format_datetime(theirs, usegmt=True),
                                   "Retry-After": format_datetime(theirs + dt.timedelta(seconds=2), usegmt=True)})]
    sleeps = []

    async def sleep(seconds):
        sleeps.append(seconds)

    [d] = Notifier(channels(thread.url)[:1], sleep=sleep).send(notice())
    assert (d.ok, d.attempts) == (True, 2)
    assert len(sleeps) == 1 and 2 <= sleeps[0] <= 2.25, sleeps


def test_a_failing_channel_never_raises_and_is_logged(receiver):
    rec, thread = receiver
    rec.scripts["/hook"] = [(500, {})] * 5
    rec.scripts["/bad"] = [(400, {})]
    logged = []

    async def sleep(seconds):
        pass

    chans = [WebhookChannel(type="webhook", url=f"{thread.url}/hook", attempts=3, name="ops"),
             WebhookChannel(type="webhook", url=f"{thread.url}/bad", attempts=3),
             WebhookChannel(type="webhook", url="http://127.0.0.1:9/refused", attempts=2)]  # nothing listens
    deliveries = Notifier(chans, log=logged.append, sleep=sleep).send(notice())
    assert [(d.channel, d.ok, d.attempts) for d in deliveries] == [("ops", False, 3), ("webhook#2", False, 1),
                                                                   ("webhook#3", False, 2)]
    assert deliveries[0].error.startswith("HTTP 500") and deliveries[1].error.startswith("HTTP 400")
    assert len(logged) == 3
    assert any(line.startswith("notification to ops (users failed) failed after 3 attempt(s): HTTP 500")
               for line in logged)
    assert [r["path"] for r in rec.received].count("/hook") == 3  # a 400 is not retried
    assert [r["path"] for r in rec.received].count("/bad") == 1


def test_channels_receive_only_their_events(receiver):
    rec, thread = receiver
    chans = [WebhookChannel(type="webhook", url=f"{thread.url}/all"),
             WebhookChannel(type="webhook", url=f"{thread.url}/pauses", events=["paused", "resumed"])]
    notifier = Notifier(chans)
    assert notifier.wants("failed") and not Notifier(chans[1:]).wants("failed")
    notifier.send(notice())
    notifier.send(notice(event="paused", state="paused", pause={"paused_by": "hand", "culprit": "hand",
                                                                "reason": "maintenance"}))
    assert sorted((r["path"], r["json"]["event"]) for r in rec.received) == \
        [("/all", "failed"), ("/all", "paused"), ("/pauses", "paused")]
    assert Notifier([]).send(notice()) == []


def test_a_channel_down_is_tried_once_per_notice_until_it_answers(receiver):
    """A receiver that is down or hangs cost every notice `attempts` timeouts and backoffs: with a
    hanging receiver (4 attempts x 10 s by default) each sync of an outage waited ~45 s more. After a
    notice failed every attempt, the next ones try the channel once; a success restores the retries."""
    rec, thread = receiver
    rec.scripts["/hook"] = [(500, {})] * 4 + [(200, {}), (503, {}), (200, {})]
    logged = []

    async def sleep(seconds):
        pass

    notifier = Notifier([WebhookChannel(type="webhook", url=f"{thread.url}/hook", attempts=3, name="ops")],
                        log=logged.append, sleep=sleep)
    attempts = [(d.ok, d.attempts) for _ in range(4) for d in notifier.send(notice())]
    assert attempts == [(False, 3), (False, 1), (True, 1), (True, 2)]
    assert len(rec.received) == 7
    assert logged[1].startswith("notification to ops (users failed) failed after 1 attempt(s) "
                                "(it failed the notice before too: tried once): HTTP 500")


def test_a_redirect_is_not_followed_with_the_channels_headers(receiver):
    """aiohttp follows redirects and keeps every header but `Authorization` across hosts: a token
    in another header (X-Token) and the notice went to whatever host `Location` named."""
    rec, thread = receiver
    other, other_thread = start_receiver()
    try:
        rec.scripts["/hook"] = [(307, {"Location": f"{other_thread.url}/stolen"})]
        logged = []
        chan = WebhookChannel(type="webhook", url=f"{thread.url}/hook", headers={"X-Token": SECRET}, attempts=3)
        [d] = Notifier([chan], log=logged.append).send(notice())
    finally:
        other_thread.stop()
    assert other.received == []
    assert (d.ok, d.attempts) == (False, 1) and len(rec.received) == 1  # an address to fix: not retried
    assert d.error.startswith(f"HTTP 307: redirect to {other_thread.url}/stolen not followed")
    assert "the channel's url" in d.error and logged


def test_a_secret_holding_slack_escapes_is_masked_in_the_slack_payload(receiver):
    """slack_payload escapes `&`, `<`, `>` before the body is redacted: a secret holding one of
    them went out to Slack in its escaped form."""
    rec, thread = receiver
    secret = "pw&<slack>-token-77"
    redaction.register(secret)
    chan = SlackChannel(type="slack", webhook_url=f"{thread.url}/services/T000/B000/x")
    [d] = Notifier([chan]).send(notice(message=f"users failed: key {secret} refused"))
    assert d.ok
    [received] = rec.received
    assert b"&lt;slack&gt;" not in received["raw"]
    text = received["json"]["blocks"][0]["text"]["text"]
    assert text.endswith("failed: key *** refused"), text


def test_an_error_body_echoing_a_secret_at_the_cut_shows_none_of_it(receiver):
    """A channel's error answer is kept to 200 characters: cut before redacting, a token echoed
    across the cut left its start in the log and the events table."""
    rec, thread = receiver
    redaction.register(SECRET)
    rec.scripts["/hook"] = [(400, {}, "Z" * 180 + f" token {SECRET}")]  # the cut falls inside the token
    logged = []
    chan = WebhookChannel(type="webhook", url=f"{thread.url}/hook", attempts=1)
    [d] = Notifier([chan], log=logged.append).send(notice())
    assert d.error.startswith("HTTP 400: ZZZ") and d.error.endswith(" token ***")
    assert "hook-to" not in d.error and "hook-to" not in logged[0]


def test_a_payload_stays_json_when_a_secret_looks_like_a_number(receiver):
    """The body was masked as text after serialisation: with a header token "1234", a count of
    1234 became `***` and receivers got a body that is no JSON."""
    rec, thread = receiver
    redaction.register("1234", partial=True)
    chan = WebhookChannel(type="webhook", url=f"{thread.url}/hook", headers={"X-Token": "1234"})
    run = {"sync": "users", "run_id": "r1", "status": "failed", "added": 1234, "error": "token 1234 refused"}
    [d] = Notifier([chan]).send(notice(run=run, message="users failed: token 1234 refused"))
    assert d.ok
    [received] = rec.received
    body = received["json"]
    assert body is not None, received["raw"]
    assert body["run"]["added"] == 1234 and body["run"]["error"] == "token *** refused"
    assert body["message"] == "users failed: token *** refused"


def test_slacks_fallback_text_escapes_what_the_data_may_hold(receiver):
    """The top-level `text` (what Slack shows in its push notifications) is mrkdwn too: a
    duplicated key `<!channel>` quoted by a blocked model's message pinged the whole channel, and
    `<https://evil.example|details>` became a link. It is escaped like the blocks."""
    rec, thread = receiver
    chan = SlackChannel(type="slack", webhook_url=f"{thread.url}/services/T000/B000/x")
    message = "users failed: model people is blocked (e.g. '<!channel>', '<https://evil.example|details>') & more"
    [d] = Notifier([chan]).send(notice(message=message))
    assert d.ok
    text = rec.received[0]["json"]["text"]
    assert text == ("dinsync: users failed: model people is blocked (e.g. '&lt;!channel&gt;', "
                    "'&lt;https://evil.example|details&gt;') &amp; more")


def test_a_channel_whose_request_cannot_be_built_fails_alone(receiver):
    """A header value with a line break (an environment variable read from a file with its
    newline): aiohttp refuses to build the request (ValueError). That failed the whole notice:
    every channel was reported failed, also those that had received it."""
    rec, thread = receiver
    bad = WebhookChannel(type="webhook", name="bad", url=f"{thread.url}/hook",
                         headers={"Authorization": "Bearer abc123456\nX-Evil: 1"}, attempts=1)
    good = SlackChannel(type="slack", webhook_url=f"{thread.url}/services/T000/B000/x")
    deliveries = Notifier([bad, good]).send(notice())
    assert [(d.channel, d.ok) for d in deliveries] == [("bad", False), ("slack#2", True)]
    assert "ValueError" in deliveries[0].error and "abc123456" not in deliveries[0].error
    assert [r["path"] for r in rec.received] == ["/services/T000/B000/x"]


def test_a_notice_goes_through_the_proxy_the_environment_names(receiver, monkeypatch):
    """Behind an egress proxy (HTTPS_PROXY / HTTP_PROXY), notices were sent direct and never arrived."""
    rec, thread = receiver
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "REQUEST_METHOD"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", thread.url)  # the receiver plays the proxy
    chan = WebhookChannel(type="webhook", url="http://hooks.example.invalid/hook", attempts=1)
    [d] = Notifier([chan]).send(notice())
    assert d.ok, d.error
    [got] = rec.received
    assert got["path"] == "/hook" and got["headers"]["Host"] == "hooks.example.invalid"


def test_a_huge_answer_of_a_channel_is_not_read_whole():
    """A channel's answer was read whole to quote 200 characters of it: a receiver's (or a proxy's)
    50 MB error page, or an endless body, took that much memory and the time to download it on
    every attempt. At most the sender's MAX_ERROR_BODY of it is read; a 2xx is not read at all."""
    import asyncio

    from aiohttp import web

    from dinsync.sandbox.runner import SandboxThread
    from tests.sender.test_http_sender import Server

    written = []

    async def huge(request, hit):
        status = 200 if request.path == "/ok" else 500
        resp = web.StreamResponse(status=status, headers={"Content-Type": "text/plain",
                                                          "Content-Length": str(50 * 2**20)})
        await resp.prepare(request)
        sent = 0
        try:
            await resp.write(b"receiver broke ".ljust(2**16, b"x"))
            sent += 2**16
            while sent < 50 * 2**20:
                await resp.write(b"x" * 2**16)
                sent += 2**16
                await asyncio.sleep(0)
        except (ConnectionError, RuntimeError):
            pass
        written.append(sent)
        return resp

    thread = SandboxThread(Server(huge))
    thread.start()
    try:
        chans = [WebhookChannel(type="webhook", url=f"{thread.url}/hook", attempts=1, name="bad"),
                 WebhookChannel(type="webhook", url=f"{thread.url}/ok", attempts=1, name="good")]
        deliveries = Notifier(chans, log=lambda line: None).send(notice())
        import time
        time.sleep(0.3)  # the handlers' writes fail once the client has closed
    finally:
        thread.stop()
    assert [(d.channel, d.ok) for d in deliveries] == [("bad", False), ("good", True)]
    assert deliveries[0].error.startswith("HTTP 500: receiver broke xxx")
    assert len(written) == 2 and max(written) < 20 * 2**20, written  # neither was read to its end


def test_a_channels_html_error_page_is_named_by_its_title_on_one_line(receiver):
    """A proxy's or load balancer's HTML page in front of a channel (nginx's 502, a captive portal)
    went whole into the log line and the `events` row, over several lines of markup; a run's error
    and `dinsync rejections` name such a page by its title. So does a notification's failure now,
    and a multi-line JSON error is read on one line too."""
    rec, thread = receiver
    page = ("<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1>"
            "</center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n")
    rec.scripts["/hook"] = [(502, {"Content-Type": "text/html"}, page)] * 2
    rec.scripts["/json"] = [(400, {"Content-Type": "application/json"}, '{\n  "error": "invalid_payload"\n}\n')]
    logged = []

    async def sleep(seconds):
        pass

    chans = [WebhookChannel(type="webhook", url=f"{thread.url}/hook", attempts=2, name="ops"),
             WebhookChannel(type="webhook", url=f"{thread.url}/json", attempts=2, name="js")]
    deliveries = Notifier(chans, log=logged.append, sleep=sleep).send(notice())
    assert [d.error for d in deliveries] == ["HTTP 502: 502 Bad Gateway (HTML page)",
                                             'HTTP 400: { "error": "invalid_payload" }']
    assert sorted(logged) == ["notification to js (users failed) failed after 1 attempt(s): HTTP 400: { \"error\": "
                              '"invalid_payload" }',
                              "notification to ops (users failed) failed after 2 attempt(s): HTTP 502: 502 Bad Gateway "
                              "(HTML page)"]


def test_a_stop_request_ends_a_channels_retries(receiver):
    """SIGTERM to a `dinsync sync` (or `serve`) whose channel hangs or fails: the notice went on
    with its attempts and backoffs (4 x 10 s by default, up to 30 s of Retry-After between them),
    so a graceful stop still took ~40 s more, past a supervisor's patience. A stop request now ends
    the wait before the next attempt, and a notice sent after it is tried once."""
    from dinsync.engine import StopToken

    rec, thread = receiver
    rec.scripts["/hook"] = [(503, {"Retry-After": "20"})] * 6
    stop, sleeps, logged = StopToken(), [], []

    async def sleep(seconds):
        sleeps.append(seconds)
        stop.request()  # SIGTERM during the backoff

    notifier = Notifier([WebhookChannel(type="webhook", url=f"{thread.url}/hook", attempts=4, name="ops")],
                        log=logged.append, sleep=sleep, stop=stop)
    [d] = notifier.send(notice())
    assert (d.ok, d.attempts) == (False, 1) and len(rec.received) == 1
    assert sum(sleeps) < 1, sleeps  # the wait ended with the stop request, not after 20 s
    assert logged[0].startswith("notification to ops (users failed) failed after 1 attempt(s) "
                                "(a stop was requested: not tried again): HTTP 503"), logged


def test_a_huge_message_of_a_long_named_sync_stays_within_slacks_limits():
    """Slack refuses a section whose text passes 3,000 characters (`invalid_blocks`: nothing
    posted). The message was cut to 2,900 characters, but the headline adds the icon and the sync's
    name before it: a sync named with 70 characters or more and a long message (a pause reason of
    100 KB) made a headline over the limit. And the cut fell inside an escape (`&am`)."""
    from dinsync.ops.notify import slack_payload

    sync = "attio_companies_enterprise_accounts_emea_with_open_opportunities_q4_2026"
    reason = "<&>" * 40_000
    payload = slack_payload(Notice("paused", sync, "paused", "ok", f"{sync} paused by hand: {reason}",
                                   pause={"paused_by": "hand", "culprit": "hand", "reason": reason}))
    blocks = payload["blocks"]
    assert len(blocks) <= 50
    texts = [b["text"]["text"] for b in blocks if "text" in b] + [e["text"] for b in blocks for e in b.get("elements", [])]
    assert all(0 < len(t) <= 3000 for t in texts), [len(t) for t in texts]
    assert blocks[0]["text"]["text"].startswith(f":double_vertical_bar: dinsync: *{sync}* paused by hand: &lt;&amp;")
    for text in (blocks[0]["text"]["text"], payload["text"]):
        assert text.endswith("&gt;…") or text.endswith("&lt;…") or text.endswith("&amp;…"), text[-12:]


def test_a_channels_stalled_name_lookup_does_not_hold_the_notice_past_its_timeout(monkeypatch):
    """aiohttp resolves a channel's host in a thread of the event loop's executor: its timeout
    abandons the lookup, but `asyncio.run` then waited for that thread to end. A resolver that
    does not answer (a DNS outage: 5 s per try and server, more with search domains) held the
    notice, hence the sync, well past `attempts` x `timeout_seconds`. The lookup is now left
    behind in a daemon thread."""
    with stalled_name_lookups(monkeypatch, "hooks.stalled.invalid") as blocked:
        chan = WebhookChannel(type="webhook", url="https://hooks.stalled.invalid/x", timeout_seconds=0.2, attempts=1)
        [d] = Notifier([chan], log=lambda line: None).send(notice())
        assert not d.ok and d.error == "TimeoutError"
        assert blocked == ["hooks.stalled.invalid"]  # returned while the lookup was still stalled


def test_after_a_stop_a_channel_that_failed_is_not_tried_again(receiver):
    """`serve` stopped while the warehouse is away: its outage tells every scheduled sync's
    `paused`, one notice after the other. After the stop, each notice still tried the failing
    channel once: one `timeout_seconds` per sync (100 syncs, a receiver that hangs: 1,000 s) before
    the service could exit. Once a notice failed after the stop, later ones skip that channel."""
    from dinsync.engine import StopToken

    rec, thread = receiver
    rec.scripts["/hook"] = [(503, {})] * 10
    stop, logged = StopToken(), []
    stop.request()
    notifier = Notifier([WebhookChannel(type="webhook", url=f"{thread.url}/hook", attempts=4, name="ops")],
                        log=logged.append, stop=stop)
    deliveries = [d for sync in ("a", "b", "c") for d in notifier.send(notice(sync=sync, message=f"{sync} failed"))]
    assert [(d.ok, d.attempts) for d in deliveries] == [(False, 1), (False, 0), (False, 0)]
    assert len(rec.received) == 1
    assert deliveries[1].error == "not sent: a stop was requested and the channel failed a notice since"
    assert logged[1] == ("notification to ops (b failed) not sent: a stop was requested and the channel "
                         "failed a notice since")
