"""Delivery to Attentive: existence checks, v1 + v2 writes, bulk jobs that finish later.

Everything HTTP goes through the shared sender (limits per endpoint, retries, split batches). On
top of it, this transport:
- runs existence checks, confirming an empty custom-attribute list through the subscriptions
  lookup when this company's API does not tell unknown users apart (learned by a probe);
- writes a unit of rows: the v1 custom attributes first, then the v2 standard fields of the rows
  whose v1 part succeeded, so that a bulk job's token covers everything still open for a row;
- follows bulk jobs (`GET /v2/bulk/job/{id}` until COMPLETED or FAILED, then the `.jsonl` results;
  statuses the spec does not list: see JobStatus.phase)
  in a background task; records stay `pending` until then, `ready()` hands over what finished,
  `settle()` waits for the rest, `resolve()` reads earlier runs' jobs from their tokens alone;
- paces each endpoint on the `x-ratelimit-limit` Attentive announces (unless dinsync.yml sets it).
"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass
from typing import Mapping, Sequence

import aiohttp
import orjson
from yarl import URL

from ...errors import DestinationUnreachableError, DinsyncError, SendingStopped
from ...sender import HttpSender
from ...sender.http import read_body
from ...sender.proxy import proxy_for
from ..base import Delivered, RecordResult, Request, SyncSpec, TransportOptions, TransportStats
from .destination import (BULK_MAX_BYTES, CONFIRM, BulkPart, WriteBatch, error_message, parse_job_token,
                          write_result)

MAX_POLL_INTERVAL = 10.0
DOWNLOAD_ATTEMPTS = 5
# A results file holds a line per record of one bulk request (each line its request and response):
# 8 times the request cap (its format is undocumented: a line echoing its request with each emoji
# written as a JSON escape, `\ud83d\ude00`, takes 12 bytes for 4, more than 4 times; a cap a genuine
# file can reach would fail its rows on every run). A longer answer is not the file (a CDN's or a
# proxy's): read further and parsed a dict a line, it took gigabytes.
RESULTS_FILE_MAX = 8 * BULK_MAX_BYTES


class AttentiveSender(HttpSender):
    """The shared sender, pacing each endpoint on the limit Attentive announces in its headers."""

    def __init__(self, destination, **kwargs):
        super().__init__(destination, **kwargs)
        self.announced: dict[str, float] = {}  # endpoint -> x-ratelimit-limit last seen

    async def classify(self, request: Request, status: int, headers: Mapping[str, str], body: bytes):
        self._follow_announced_limit(request.endpoint, headers)
        return await super().classify(request, status, headers, body)

    def _follow_announced_limit(self, endpoint: str, headers: Mapping[str, str]) -> None:
        raw = headers.get("x-ratelimit-limit")
        if raw is None or not self.limits_enabled or endpoint in self.rate_overrides:
            return
        try:
            limit = float(raw)
        except ValueError:
            return
        if 1.0 <= limit <= 10_000.0 and self.announced.get(endpoint) != limit:
            self.announced[endpoint] = limit
            self.limiter(endpoint).set_rate(limit)


@dataclass
class _Job:
    job_id: str
    key_field: str
    keys: list[str]  # in record order
    records: list[bytes]  # as sent (a FAILED job is submitted again)
    sent_ids: dict[str, str]
    retries_left: int
    unit: int  # the write that submitted it (its outcomes wait until that write has returned)
    next_poll: float = 0.0
    interval: float = 0.25
    poll_failures: int = 0


@dataclass
class _Stats:
    jobs: int = 0
    jobs_failed: int = 0
    downloads: int = 0
    confirmations: int = 0
    probe: str | None = None  # what the probe learned


class AttentiveTransport:
    def __init__(self, destination, options: TransportOptions):
        self.destination = destination
        self.sender = AttentiveSender(destination, rate_overrides=options.rate_overrides,
                                      limits_enabled=options.limits_enabled, timeout=options.timeout,
                                      retry_policy=options.retry_policy, stop=options.stop,
                                      connections=options.concurrency)
        self.timeout = options.timeout
        self.resolve_wait = options.resolve_wait
        self._stopping = options.resolve_stop or (lambda: False)
        self._resolve_deadline: float | None = None  # set by the first resolve()
        opts = destination.options
        self.existence_check = opts.get("existence_check", "custom_attributes")
        self.poll_seconds = float(opts.get("job_poll_seconds", 0.25))
        self.job_retries = int(opts.get("job_retries", 1))
        self.empty_list_is_known: bool = False  # until the probe says an unknown user answers 404
        self.stats = _Stats()
        self._jobs: dict[str, _Job] = {}
        self._finished = Delivered([], [])  # outcomes not handed over yet
        self._writing: dict[int, Delivered] = {}  # writes not returned yet -> their jobs' outcomes so far
        self._units = 0
        self._changed: asyncio.Event | None = None
        self._poller: asyncio.Task | None = None
        self._downloads: aiohttp.ClientSession | None = None

    # --- lifecycle ----------------------------------------------------------------------
    async def __aenter__(self) -> "AttentiveTransport":
        await self.sender.__aenter__()
        # Results files are pre-signed links: fetched without our API key, never sent elsewhere.
        self._downloads = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout),
                                                headers={"User-Agent": self.sender.user_agent})
        self._changed = asyncio.Event()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self._downloads is not None:
            await self._downloads.close()
            self._downloads = None
        await self.sender.__aexit__(*exc)

    async def start(self, sync: SyncSpec) -> None:
        """Before the first request: the key works and the base URL is Attentive's (`GET /v1/me`),
        then what an unknown user's custom-attribute lookup answers (see `_probe`)."""
        delivered = await self.sender.deliver(self.destination.me_request())
        if delivered.problems:
            problem = delivered.problems[0]
            reason = problem.reason
            if problem.status == "failed":  # retried to the end without Attentive's answer (5xx, timeouts)
                raise DestinationUnreachableError(
                    f"attentive: could not reach Attentive (GET /v1/me {reason}); nothing was sent",
                    hint="check that Attentive is reachable (base_url, the network, its status page); run again")
            raise DinsyncError(f"attentive: GET /v1/me did not answer as Attentive does ({reason})",
                               hint="check base_url and that the API key is a private-app key of this company")
        if self.existence_check == "custom_attributes":
            await self._probe(sync.key_field)

    async def _probe(self, key_field: str) -> None:
        """Ask for the custom attributes of an address no subscriber can have. A 404 means this API
        tells unknown users apart, so an empty list names a known subscriber without custom
        attributes; an empty list means it does not, and empty answers are then confirmed through
        the subscriptions lookup (404 for an unknown subscriber, as its spec lists)."""
        probe = f"dinsync-existence-probe-{uuid.uuid4().hex}@example.com"
        request = self.destination.lookup_request("probe", "email", "probe", probe)
        delivered = await self.sender.deliver(request)
        if CONFIRM in delivered.pending:
            answer = "[] for unknown users"
        elif delivered.problems:
            answer = "404 for unknown users" if delivered.problems[0].status == "not_found" else \
                f"inconclusive ({delivered.problems[0].status})"
        else:
            answer = "inconclusive (a list of attributes)"
        self.empty_list_is_known = answer.startswith("404")
        self.stats.probe = answer

    # --- delivering -----------------------------------------------------------------------
    async def deliver(self, request: Request) -> Delivered:
        ctx = request.context
        if isinstance(ctx, WriteBatch):
            return await self._write(ctx)
        delivered = await self.sender.deliver(request)
        confirm = delivered.pending.pop(CONFIRM, [])
        if not confirm:
            return delivered
        if self.empty_list_is_known:
            delivered.ok.extend(confirm)
            return delivered
        self.stats.confirmations += len(confirm)
        ident = _query_value(request.path)  # lookups carry one key each
        asks = [self.destination.lookup_request("subscriptions", ctx.field, k, ident) for k in confirm]
        for answer in await asyncio.gather(*(self.sender.deliver(r) for r in asks)):
            delivered.merge(answer)
        return delivered

    async def _write(self, batch: WriteBatch) -> Delivered:
        out = Delivered(list(batch.noop), [])
        refused: set[str] = set()
        if batch.v1:
            requests = [self.destination.custom_attributes_request(k, body) for k, body in batch.v1.items()]
            for answer in await asyncio.gather(*(self.sender.deliver(r) for r in requests)):
                out.problems += answer.problems
                refused.update(r.key for r in answer.problems)
        in_v2 = {k for r in batch.v2 for k in r.keys}
        out.ok += [k for k in batch.v1 if k not in refused and k not in in_v2]
        v2 = []
        for r in batch.v2:  # rows whose custom attributes were refused are not written further
            keep = [i for i, k in enumerate(r.keys) if k not in refused]
            if len(keep) == len(r.keys):
                v2.append(r)
            elif keep and r.rebuild is not None and r.items is not None:
                v2.append(r.rebuild([r.keys[i] for i in keep], [r.items[i] for i in keep]))
        self._units += 1
        unit = self._units
        self._writing[unit] = Delivered([], [])
        try:
            for answer in await asyncio.gather(*(self._submit(r, unit) for r in v2)):
                out.merge(answer)
        finally:
            # The caller records this write's pending records as soon as it returns (no await in
            # between), so outcomes of its jobs that came meanwhile are handed over from now on.
            held = self._writing.pop(unit)
            if held.ok or held.problems:
                self._finish(held, None)
        return out

    async def _submit(self, request: Request, unit: int) -> Delivered:
        """A v2 request; the bulk jobs it created are followed at once, not when the whole write
        has been answered (with 512 small bulk requests in a write, every poll came after every
        submission: the requests of 1,500 jobs ended at 31 instead of 17 s)."""
        answer = await self.sender.deliver(request)
        part = request.context
        if isinstance(part, BulkPart) and part.jobs:
            jobs, part.jobs[:] = list(part.jobs), []  # shared by the write's requests: taken once
            self._follow_jobs(part, jobs, self.job_retries, unit)
        return answer

    def _follow_jobs(self, part: BulkPart, jobs: list, retries_left: int, unit: int) -> None:
        """Follow the bulk jobs a submission of `part` created: (job id, keys, records) each."""
        for job_id, keys, records in jobs:
            self._follow(_Job(job_id, part.key_field, keys, records, part.sent_ids, retries_left, unit,
                              interval=self.poll_seconds))

    # --- bulk jobs --------------------------------------------------------------------------
    def _follow(self, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        job.next_poll = loop.time() + job.interval
        self._jobs[job.job_id] = job
        self.stats.jobs += 1
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll_forever())

    async def _poll_forever(self) -> None:
        loop = asyncio.get_running_loop()
        while self._jobs:
            now = loop.time()
            due = [j for j in self._jobs.values() if j.next_poll <= now]
            if not due:
                await asyncio.sleep(max(0.0, min(j.next_poll for j in self._jobs.values()) - now))
                continue
            answers = await asyncio.gather(*(self._poll(job) for job in due), return_exceptions=True)
            for job, error in zip(due, answers):
                if isinstance(error, BaseException):  # e.g. the key was revoked: the job's rows fail
                    if isinstance(error, asyncio.CancelledError):
                        raise error
                    if isinstance(error, SendingStopped):  # the run is stopping: its jobs stay pending
                        return
                    self._jobs.pop(job.job_id, None)
                    self._finish(self._all(job, "failed", f"Attentive bulk job {job.job_id}: {error}"), job.unit)

    async def _poll(self, job: _Job) -> None:
        loop = asyncio.get_running_loop()
        request = self.destination.job_request(job.job_id)
        answer = await self.sender.deliver(request)
        status, phase = request.context.status, request.context.phase
        results: Delivered | None = None
        if not answer.problems and phase is not None:
            job.poll_failures = 0  # three unreadable answers in a row fail a job, not three in its life
        if answer.problems or phase is None:
            job.poll_failures += 1
            if job.poll_failures >= 3:
                why = answer.problems[0].reason if answer.problems else "no status"
                results = self._all(job, "failed", f"Attentive bulk job {job.job_id}: status unreadable ({why})")
        elif phase == "done":
            lines = await self._results_file(request.context.url) if request.context.url else None
            if lines is None:
                results = self._all(job, "failed", f"Attentive bulk job {job.job_id}: results file unreadable")
            else:
                results = job_results(lines, job.keys, job.sent_ids, job.key_field, job.job_id)
        elif phase == "failed":
            self.stats.jobs_failed += 1
            if job.retries_left > 0 and status != "UNKNOWN":  # (UNKNOWN: no such job, see parse)
                await self._resubmit(job)
                return
            results = self._all(job, "failed", f"Attentive bulk job {job.job_id} ended {status}")
        if results is None:  # still PENDING / IN_PROGRESS (or another status without results)
            job.next_poll = loop.time() + job.interval
            job.interval = min(job.interval * 1.5, MAX_POLL_INTERVAL)
            return
        self._jobs.pop(job.job_id, None)
        self._finish(results, job.unit)

    def _finish(self, results: Delivered, unit: int | None) -> None:
        """Outcomes for `ready()` / `settle()`; those of a write still running wait for its return
        (`ready()` must not hand over an outcome before the pending record it settles is known)."""
        if unit in self._writing:
            self._writing[unit].merge(results)
            return
        self._finished.merge(results)
        assert self._changed is not None
        self._changed.set()

    async def _resubmit(self, job: _Job) -> None:
        """A FAILED job's records, submitted again as a new job; the old token's keys follow it."""
        self._jobs.pop(job.job_id, None)
        part = BulkPart(job.key_field, job.sent_ids)
        answer = await self.sender.deliver(self.destination.bulk_request(job.keys, job.records, part))
        answer.pending.clear()  # the pipeline keeps them under the first token; `_follow` tracks them
        self._follow_jobs(part, part.jobs, job.retries_left - 1, job.unit)
        self._finish(answer, job.unit)

    @staticmethod
    def _all(job: _Job, status: str, reason: str) -> Delivered:
        return Delivered([], [RecordResult(k, status, reason) for k in job.keys])  # type: ignore[arg-type]

    async def _results_file(self, url: str) -> list[dict] | None:
        """The job's `.jsonl` (a pre-signed link: no API key, not an API endpoint)."""
        if not url.startswith(("http://", "https://")) or self._downloads is None:
            return None
        for attempt in range(1, DOWNLOAD_ATTEMPTS + 1):
            hint = None
            try:
                link = URL(url, encoded=True)
                async with self._downloads.get(link, **proxy_for(link)) as resp:
                    body = await read_body(resp, RESULTS_FILE_MAX)
                    if resp.status == 200 and body.strip():
                        self.stats.downloads += 1
                        return [orjson.loads(line) for line in body.splitlines() if line.strip()]
                    if resp.status != 200 and resp.status < 500 and resp.status not in (404, 408, 429):
                        return None  # (an empty 200 is a glitch, fetched again: a job has a line a record)
                    hint = self.sender.retry_after(resp.headers)  # the link's host (a CDN's 503, 429) asks
                    if hint is not None and hint > self.sender.policy.max_retry_after:
                        return None  # longer than a run waits: the rows are sent by the next run
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, orjson.JSONDecodeError):
                pass
            if attempt < DOWNLOAD_ATTEMPTS:
                await asyncio.sleep(self.sender.policy.delay(attempt, hint))
        return None

    # --- outcomes -----------------------------------------------------------------------------
    def ready(self) -> Delivered:
        """Outcomes of pending records that arrived since the last call (does not wait)."""
        out, self._finished = self._finished, Delivered([], [])
        return out

    async def settle(self, pending: Mapping[str, Sequence[str]], timeout: float) -> Delivered:
        """Wait (at most `timeout` s) for this run's jobs; keys without an outcome stay pending."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        assert self._changed is not None
        while self._jobs and loop.time() < deadline:
            if self._poller is None or self._poller.done():
                self._poller = asyncio.create_task(self._poll_forever())
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, deadline - loop.time()))
            except asyncio.TimeoutError:
                break
        out = self.ready()
        told = set(out.ok) | {r.key for r in out.problems}
        for token, keys in pending.items():
            rest = [k for k in keys if k not in told]
            if rest:
                out.pending[token] = rest
        return out

    async def resolve(self, tokens: Sequence[str]) -> Delivered:
        """Outcomes of earlier runs' bulk jobs from their tokens alone: results keyed by the
        identifier each results line carries (the key as sent). A job still running is polled
        until it ends, for at most `resolve_wait` seconds over all calls: Attentive does not say
        that jobs finish in the order they were submitted, so its rows sent again now could get
        its older values on top of the newer ones (a run killed, or ended by its outcome timeout,
        with the job running). Jobs still running then, FAILED or no longer kept by Attentive
        (two weeks) tell nothing: their rows are planned again anyway."""
        out = Delivered([], [])
        loop = asyncio.get_running_loop()
        if self._resolve_deadline is None:
            self._resolve_deadline = loop.time() + self.resolve_wait
        for token in dict.fromkeys(tokens):
            parsed = parse_job_token(token)
            if parsed is None:
                continue
            key_field, job_id = parsed
            interval = self.poll_seconds
            while True:
                request = self.destination.job_request(job_id)
                answer = await self.sender.deliver(request)
                if answer.problems or request.context.phase != "running":
                    break
                left = self._resolve_deadline - loop.time()
                if left <= 0 or self._stopping():
                    break
                await asyncio.sleep(min(interval, left))
                interval = min(interval * 1.5, MAX_POLL_INTERVAL)
            if answer.problems or request.context.phase != "done" or not request.context.url:
                continue
            lines = await self._results_file(request.context.url)
            out.merge(job_results(lines or [], None, None, key_field, job_id))
        return out

    def transport_stats(self) -> TransportStats:
        return self.sender.transport_stats()


def job_results(lines: list[dict], keys: list[str] | None, sent_ids: dict[str, str] | None, key_field: str,
                job_id: str) -> Delivered:
    """Per-record results of a bulk job from its `.jsonl` lines (format undocumented; read leniently).

    A line that carries the request names its record by the identifier we sent (the file's order and
    `index` are undocumented: a file in another order, or without `index`, still matches); a line
    without the identifier is matched by its `index` (else its position). In a later run (`keys`
    None) the key is that identifier. Records of ours without a readable line are `failed` (sent
    again), never assumed delivered.
    """
    results: dict[str, RecordResult] = {}
    torn: set[str] = set()  # records the file gave two different results: failed, whatever either said
    named: dict[str, list[str]] = {}  # identifier as sent -> our records sent with it
    if keys is not None:
        for key in keys:
            named.setdefault((sent_ids or {}).get(key, key), []).append(key)
    for position, line in enumerate(lines):
        if not isinstance(line, dict):
            continue
        sent = _line_identifier(line, key_field)
        if keys is not None:
            key = _line_record(line, position, sent, keys, sent_ids or {}, named)
            if key is None:
                continue  # not a record we can tell: leave it failed rather than guess
        elif sent is None:
            continue
        else:
            key = sent
        status, data = _line_response(line)
        if status is None or key in torn:
            continue
        result = write_result(key, status, data, error_message(data, b""))
        earlier = results.setdefault(key, result)
        if (earlier.status, earlier.reason) != (result.status, result.reason):  # the file contradicts itself
            torn.add(key)
            results[key] = RecordResult(key, "failed", f"Attentive bulk job {job_id}: its results gave this "
                                        "record two different results")
    if keys is not None:
        for key in keys:
            if key not in results:
                results[key] = RecordResult(key, "failed", f"Attentive bulk job {job_id}: no result for this record")
    return Delivered([k for k, r in results.items() if r.status == "ok"],
                     [r for r in results.values() if r.status != "ok"])


def _line_record(line: dict, position: int, sent: str | None, keys: list[str], sent_ids: dict[str, str],
                 named: dict[str, list[str]]) -> str | None:
    """Which of our records a results line is about: the one record sent with the identifier the
    line carries; else (no identifier, or one shared by several records) the record at its `index`
    (else its position), provided the identifier, if any, is the one that record was sent with."""
    if sent is not None and len(named.get(sent, ())) == 1:
        return named[sent][0]
    index = line.get("index", position)
    if type(index) is not int or not 0 <= index < len(keys):
        return None
    key = keys[index]
    if sent is not None and sent_ids.get(key, key) != sent:
        return None
    return key


def _line_identifier(line: dict, key_field: str) -> str | None:
    """The identifier a results line names: in its `request` (the user as sent), else at its top."""
    request = line.get("request") if isinstance(line.get("request"), dict) else line
    ids = request.get("identifiers")
    if isinstance(ids, dict) and isinstance(ids.get(key_field), str):
        return ids[key_field]
    return None


# a results line's status given as a word (the file's format is undocumented) that can only mean
# the write was applied; any other word stays unread (the record failed, sent again)
_APPLIED_WORDS = frozenset({"success", "succeeded", "successful", "ok", "completed", "accepted"})


def _line_response(line: dict) -> tuple[int | None, object]:
    """(HTTP status, body) of a results line: `response.statusCode` (or `status`) as a number or
    its digits; a word meaning success, or a body `{"success": true}` alone, reads as 202."""
    response = line.get("response") if isinstance(line.get("response"), dict) else line
    status = response.get("statusCode", response.get("status"))
    body = response.get("body")
    if isinstance(status, str) and status.isdigit():
        status = int(status)
    elif isinstance(status, str) and status.strip().lower() in _APPLIED_WORDS:
        status = 202
    elif status is None and isinstance(body, dict) and body.get("success") is True:
        status = 202
    return (status if type(status) is int else None), body


def _query_value(path: str) -> str:
    from urllib.parse import parse_qs, urlsplit

    values = [v for vs in parse_qs(urlsplit(path).query).values() for v in vs]
    return values[0] if values else ""
