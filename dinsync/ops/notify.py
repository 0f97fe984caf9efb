"""Notification channels: a generic JSON webhook and a Slack-compatible incoming webhook.

One notice per change of a sync's state (see `dinsync.ops.operate`), sent to every channel whose
`events` include it. A channel that fails never fails the sync: each notice is tried
`attempts` times with exponential backoff and full jitter (429 honours `Retry-After`, capped),
then the failure is logged and recorded in the `events` table; while a channel is down (its last
notice failed every attempt) later notices of the same Notifier try it once, until one gets through. Every payload is serialised, then
passed through the redactor, so no registered secret can leave in it.

Generic webhook body (POST, application/json):

    {"event": "failed", "sync": "iterable_users", "state": "failed", "previous_state": "ok",
     "message": "iterable_users failed: ...", "project": "shop", "at": "2025-01-01T06:00:02.456Z",
     "run": {run object, as `dinsync sync --json` prints it} | null,
     "pause": {"paused_by": "auto", "culprit": "column", "reason": "..."} | null,
     "tool_version": "0.1.0"}

Slack body: {"text": "dinsync: <message>", "blocks": [section: icon + the message (the sync's name
in bold), details section, context]}. The message starts with the sync's name, said once.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable, Sequence

import orjson

from .. import __version__, redaction

EVENT_ICONS = {"warning": ":warning:", "failed": ":red_circle:", "recovered": ":large_green_circle:",
               "paused": ":double_vertical_bar:", "resumed": ":arrow_forward:"}
RETRYABLE_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
SLACK_TEXT_LIMIT = 3000  # characters of a section's text: Slack refuses a longer one (invalid_blocks)
STOP_POLL_SECONDS = 0.1  # how soon a backoff sees a stop request


@dataclass
class Notice:
    """A change of a sync's state worth telling people about."""

    event: str  # warning | failed | recovered | paused | resumed
    sync: str
    state: str  # ok | warning | failed | paused
    previous_state: str | None
    message: str
    run: dict[str, Any] | None = None
    pause: dict[str, Any] | None = None
    project: str | None = None
    at: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.timezone.utc))


@dataclass
class Delivery:
    channel: str
    ok: bool
    attempts: int
    error: str | None = None


def webhook_payload(notice: Notice) -> dict[str, Any]:
    from ..report import utc_iso

    return {"event": notice.event, "sync": notice.sync, "state": notice.state,
            "previous_state": notice.previous_state, "message": notice.message, "project": notice.project,
            "at": utc_iso(notice.at), "run": notice.run, "pause": notice.pause, "tool_version": __version__}


def slack_payload(notice: Notice) -> dict[str, Any]:
    icon = EVENT_ICONS.get(notice.event, "")
    # The message names the sync itself ("users failed: ..."): each text says it once.
    named = notice.message.startswith(f"{notice.sync} ")
    rest = notice.message[len(notice.sync):] if named else f" {notice.event}: {notice.message}"
    named_as = f"{icon} dinsync: *{_mrkdwn(notice.sync)}*"
    headline = f"{named_as}{_mrkdwn(rest, SLACK_TEXT_LIMIT - len(named_as))}".strip()
    details = [f"*state*: {notice.previous_state or 'unknown'} → {notice.state}"]
    run = notice.run or {}
    if run.get("run_id"):
        details.append(f"*run*: `{run['run_id']}` ({run.get('status')}, +{run.get('added', 0)} "
                       f"~{run.get('changed', 0)} -{run.get('removed', 0)}, sent {run.get('sent', 0)}, "
                       f"rejected {run.get('rejected', 0)}, failed {run.get('failed', 0)})")
    if notice.pause:
        by, culprit = notice.pause.get("paused_by"), notice.pause.get("culprit")
        details.append(f"*paused by*: {by}" + (f" ({culprit})" if culprit and culprit != by else ""))
    context = [f"project {notice.project}"] if notice.project else []
    context.append(f"dinsync {__version__}")
    return {
        # the fallback text (push notifications) is mrkdwn too: `<!channel>` in a quoted key would ping everyone
        "text": f"dinsync: {_mrkdwn(notice.sync)}{_mrkdwn(rest)}",
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": headline}},
            {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(details)}},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": " · ".join(context)}]},
        ],
    }


def _mrkdwn(text: str, limit: int = 2900) -> str:
    """Slack's three escapes (its messages are not HTML, but these three are), cut to `limit`
    characters (an escape is not cut in two: `&am` would show as such)."""
    text = redaction.redact(text)  # before the cut: a secret cut in two is masked by neither half
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    if len(text) <= limit:
        return text
    return re.sub(r"&[a-z]{0,3}$", "", text[:limit - 1]) + "…"


def channel_name(channel: Any, index: int) -> str:
    return channel.name or f"{channel.type}#{index + 1}"


class Notifier:
    """Sends notices to the configured channels. `sleep` and `backoff_base` are injectable (tests)."""

    def __init__(self, channels: Sequence[Any], *, project: str | None = None,
                 log: Callable[[str], None] = lambda text: None,
                 sleep: Callable[[float], Awaitable[None]] | None = None, backoff_base: float = 0.5,
                 backoff_cap: float = 30.0, stop: Any = None):
        self.channels = list(channels)
        # a StopToken: once a stop is requested (SIGTERM), a notice is not tried again (its backoff ends
        # at once) and later ones are tried once: a graceful stop does not wait for a failing channel
        self.stop = stop
        self.project = project
        self.log = log
        self.sleep = sleep
        self.backoff_base = backoff_base
        self.backoff_cap = backoff_cap
        # channels whose last notice failed every attempt: later notices try them once until one gets
        # through (a receiver that is down or hangs costs one timeout per notice, not `attempts` of them)
        self._down: set[str] = set()
        # channels that failed a notice after the stop request: not tried again (`serve` stopped
        # during a warehouse outage tells every sync; each would cost one timeout before it exits)
        self._failed_stopping: set[str] = set()

    def wants(self, event: str) -> bool:
        return any(event in c.events for c in self.channels)

    def send(self, notice: Notice) -> list[Delivery]:
        """Deliver `notice` to every channel that wants its event (blocking; never raises)."""
        targets = [(channel_name(c, i), c) for i, c in enumerate(self.channels) if notice.event in c.events]
        if not targets:
            return []
        notice.project = notice.project or self.project
        from ..sender.lookups import run_leaving_lookups  # loaded only when something is to be sent

        try:
            # (a channel's host-name lookup that outlived its timeout is not waited for: see lookups)
            return run_leaving_lookups(self._send_all(notice, targets))
        except Exception as exc:  # a bug here must not fail a sync either
            text = redaction.redact(f"{type(exc).__name__}: {exc}")
            self.log(f"notification of {notice.sync} {notice.event} failed: {text}")
            return [Delivery(name, False, 0, text) for name, _ in targets]

    async def _send_all(self, notice: Notice, targets) -> list[Delivery]:
        import asyncio

        import aiohttp

        async with aiohttp.ClientSession() as session:
            return list(await asyncio.gather(*(self._send(session, name, c, notice) for name, c in targets)))

    async def _send(self, session, name: str, channel: Any, notice: Notice) -> Delivery:
        import asyncio

        import aiohttp

        from ..destinations.base import body_excerpt
        from ..sender.http import read_body, redirect_reason
        from ..sender.proxy import proxy_for
        from ..sender.retry import RetryPolicy, parse_retry_after

        if channel.type == "slack":
            url, payload, headers = channel.webhook_url.get_secret_value(), slack_payload(notice), {}
        else:
            url, payload = channel.url.get_secret_value(), webhook_payload(notice)
            headers = {k: v.get_secret_value() for k, v in channel.headers.items()}
        # each string masked before serialising: masking the body's text could leave no JSON
        body = orjson.dumps(redaction.redact_document(payload), default=lambda v: redaction.redact(str(v)))
        headers = {**headers, "Content-Type": "application/json", "User-Agent": f"dinsync/{__version__}"}
        policy = RetryPolicy(max_attempts=channel.attempts, base=self.backoff_base, cap=self.backoff_cap,
                             max_retry_after=self.backoff_cap)
        timeout = aiohttp.ClientTimeout(total=channel.timeout_seconds)
        if self._stopping() and name in self._failed_stopping:
            error = "not sent: a stop was requested and the channel failed a notice since"
            self.log(f"notification to {name} ({notice.sync} {notice.event}) {error}")
            return Delivery(name, False, 0, error)
        attempts = 1 if name in self._down or self._stopping() else channel.attempts
        error, stopped = None, False
        for attempt in range(1, attempts + 1):
            retry_after = None
            try:
                # a redirect is not followed: the URL's token or a header (e.g. X-Token) would go with it
                async with session.post(url, data=body, headers=headers, timeout=timeout,
                                        allow_redirects=False, **proxy_for(url)) as resp:
                    if 200 <= resp.status < 300:  # (its body is not read: a receiver's endless one neither)
                        self._down.discard(name)
                        return Delivery(name, True, attempt)
                    # an error's first MAX_ERROR_BODY bytes at most (read whole, a 50 MB page took 50 MB),
                    # on one line, a proxy's HTML page by its title (its markup went whole into the log)
                    text = body_excerpt(await read_body(resp), chars=200)
                    error = (redirect_reason(resp.status, resp.headers, "the channel's url") if 300 <= resp.status < 400
                             else f"HTTP {resp.status}" + (f": {text}" if text else ""))
                    if resp.status not in RETRYABLE_STATUSES:
                        break
                    # one that says "now" (0, a date in the past) names no wait: the backoff's then, as
                    # the sender's (asked again within 0.25 s, a channel's attempts went in a second); a
                    # date read against the receiver's clock (its Date), as the sender reads one
                    retry_after = parse_retry_after(resp.headers.get("Retry-After"),
                                                    server_date=resp.headers.get("Date")) or None
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                error = f"{type(exc).__name__}: {exc}".rstrip(": ")
            except ValueError as exc:  # the request cannot be built (a line break in a header): this channel only
                error = f"{type(exc).__name__}: {exc}".rstrip(": ")
                break
            if attempt < attempts and not await self._backoff(policy.delay(attempt, retry_after)):
                stopped = True
                break
        error = redaction.redact(error)
        down = (" (a stop was requested: not tried again)" if stopped or (attempts == 1 < channel.attempts
                                                                          and self._stopping())
                else " (it failed the notice before too: tried once)" if name in self._down else "")
        self._down.add(name)
        if self._stopping():
            self._failed_stopping.add(name)
        self.log(f"notification to {name} ({notice.sync} {notice.event}) failed after {attempt} attempt(s){down}: "
                 f"{error}")
        return Delivery(name, False, attempt, error)

    def _stopping(self) -> bool:
        return self.stop is not None and self.stop.requested

    async def _backoff(self, seconds: float) -> bool:
        """Wait `seconds` before the next attempt; False when a stop request ended the wait."""
        import asyncio

        sleep = self.sleep or asyncio.sleep
        if self.stop is None:
            await sleep(seconds)
            return True
        while seconds > 0 and not self._stopping():
            step = min(seconds, STOP_POLL_SECONDS)
            await sleep(step)
            seconds -= step
        return not self._stopping()
