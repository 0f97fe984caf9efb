"""The send phase of a run: plan rows -> Polars mapping -> requests -> transport -> checkpoints.

Threads and tasks:
- the plan is read from the warehouse in one worker thread (Arrow batches of bounded size) and
  mapped with Polars in another, then turned into requests by the destination;
- requests go through a bounded asyncio queue (back-pressure to the reader) to N sender tasks;
- answers are handed to the `Checkpointer`, which commits them on its own thread.

A stop request (SIGTERM/SIGINT) or a lost lock stops the reader; requests already queued are
dropped (their rows are simply planned again next run) and those in flight get `grace_seconds`
to finish.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
from dataclasses import dataclass
from typing import Any, Callable, Collection, Mapping, get_args

import polars as pl

from ..destinations import describe_error, hooks
from ..destinations.base import (Delivered, Destination, RecordResult, RecordStatus, ServiceSpec, SyncSpec,
                                 Transport, TransportStats)
from ..errors import DestinationAuthError, DestinationUnreachableError, DinsyncError, RunSummary, SendingStopped
from ..mapping import FieldMapping, KeyMapping, MappedBatch, frame_from_arrow, map_batch
from ..warehouses.base import doing
from .commits import Checkpointer
from .stop import cancel_and_wait, within_grace

# Update-mode lookups: rows are looked up a slice at a time before their writes are queued; a slice
# holds about LOOKUP_SLICE_SECONDS of lookups at the lookup endpoint's rate, within these bounds.
LOOKUP_SLICE_SECONDS = 1.0
LOOKUP_SLICE_MIN_ROWS = 50  # fewer would only mean more, smaller writes (at 10 lookups/s a slice is 5 s)
LOOKUP_SLICE_ROWS = 1000
LOOKUP_SLICES = 4  # slices whose lookups are under way at once (the oldest waits for its slowest answer)
# Rows mapped (and prepared into requests) at once, at most this many bytes of plan rows: mapping
# makes several copies of each value (its text, the JSON of the row, the request body), so a batch
# of wide rows (10,000 rows of 100 KB of text) took ~9 GB of RSS where its Arrow batch was 1 GB.
MAP_BYTES = 32 << 20
# Bodies of the requests prepared and not yet answered (queued, or held by a sender task waiting for
# its rate slot) add up to at most about QUEUE_BYTES (plus one request): the queue and the sender
# tasks bound them in number only, and one sender task per socket (Iterable: 48) each holding a
# 4 MB bulk body kept ~0.6 GB of requests at once (a first sync of 20,000 rows of 100 KB peaked at
# 1.9 GB of RSS, 150,000 rows at 2.5 GB). The usual request (a few hundred KB) never reaches it.
QUEUE_BYTES = 64 << 20
# `pending`'s settled entries are dropped once they outnumber the waiting ones and this many
COMPACT_MIN_STALE = 10_000


def waiting_note(rows: int, timeout: float) -> str:
    """Said before a run waits for the outcomes of its rows (an import report, bulk jobs): the
    wait may last minutes, and the last line of a log said "sent N/N rows, 0 acknowledged"."""
    return (f"waiting for the destination's outcome of {rows:,} {'row' if rows == 1 else 'rows'} sent (an import "
            f"report, bulk jobs), at most {timeout:g} s (DINSYNC_OUTCOME_TIMEOUT_SECONDS); rows still without "
            "one stay pending, read by the next run")


def _read(batches):
    """The plan's next batch (on the reading thread), None at its end."""
    with doing("reading the plan's rows to send"):
        return next(batches, None)


def _body_bytes(request) -> int:
    return len(request.body) if request.body else 0


def slices_by_bytes(batch) -> list:
    """`batch` in slices (zero-copy) of about MAP_BYTES each, by its average row size; the usual
    batch (10,000 rows of a few hundred bytes) whole."""
    size = batch.nbytes
    if size <= MAP_BYTES or batch.num_rows <= 1:
        return [batch]
    rows = max(1, batch.num_rows * MAP_BYTES // size)
    return [batch.slice(start, rows) for start in range(0, batch.num_rows, rows)]


@dataclass
class MappingPlan:
    """How plan rows become mapped rows for this sync (all declared, nothing guessed)."""

    key: KeyMapping
    fields: list[FieldMapping]
    region: str | None
    max_row_bytes: int | None


def map_plan_batch(batch, mapping: MappingPlan, declared_scale: Collection[str] = (),
                   fields: list[FieldMapping] | None = None, whole_row: bool = True) -> MappedBatch:
    """An Arrow batch of plan rows (`_key`, `_op`, `v{i}`, `x{i}`) mapped as a run sends them, with
    the fields' texts (`_t{n}`). `declared_scale`: the planner's `declared_scale_values` (a
    numeric(p, 0) whose plan column lost its declared scale is not of a free scale). `fields`: a
    part of the mapping's fields only; without `whole_row`, the row's size is not checked."""
    frame, numeric_text = frame_from_arrow(batch)
    numeric_text = {c: free and c not in declared_scale for c, free in numeric_text.items()}
    return map_batch(frame, mapping.key, mapping.fields if fields is None else fields,
                     max_row_bytes=mapping.max_row_bytes if whole_row else None, phone_region=mapping.region,
                     keep_field_text=True, numeric_text=numeric_text)


RECORD_STATUSES = get_args(RecordStatus)
NO_OUTCOME = "the destination gave no outcome for this record"
NOT_PREPARED = "the destination's prepare() made no request for this row and did not reject it"


def outside_note(who: str, key: str) -> str:
    """Said once a run: a plugin's prepare() put in a request keys of rows it was not given."""
    return (f"{who}'s prepare() put in its requests keys outside the rows it was given (e.g. {key!r}: another "
            "batch's row, or no row of the plan): whatever the destination answers of them is ignored (not "
            "committed, not counted); each request's own rows are judged as usual")


def held_to(keys: list[str], delivered: Delivered) -> Delivered:
    """What a transport said of a request, held to the request's records (`keys`, as they were
    when it was handed over: a plugin may change the request's own list): one outcome per key
    (a refusal first, then pending, then acknowledged; a key said both ok and rejected is not
    acknowledged), keys the request did not carry ignored (an acknowledgement of another row must
    not commit it), and a key the transport said nothing of `failed` (sent again next run) rather
    than silently neither committed nor reported. A transport is a plugin's code too."""
    if delivered.ok is keys and not delivered.problems and not delivered.pending:
        return delivered  # the whole request acknowledged (the HTTP sender's usual answer)
    wanted = set(keys)
    told: set[str] = set()
    problems = []
    for r in delivered.problems:
        if r.key in wanted and r.key not in told:
            told.add(r.key)
            problems.append(r)
    pending: dict[str, list[str]] = {}
    for token, token_keys in delivered.pending.items():
        for k in token_keys:
            if k in wanted and k not in told:
                told.add(k)
                pending.setdefault(token, []).append(k)
    ok = [k for k in dict.fromkeys(delivered.ok) if k in wanted and k not in told]
    told.update(ok)
    if len(told) < len(wanted):
        problems.extend(RecordResult(k, "failed", NO_OUTCOME) for k in dict.fromkeys(keys) if k not in told)
    return Delivered(ok, problems, pending)


class Pipeline:
    def __init__(self, *, planner, destination: Destination, service: ServiceSpec, spec: SyncSpec,
                 mapping: MappingPlan, transport: Transport, checkpointer: Checkpointer, summary: RunSummary,
                 options, stop, lock, progress: Callable[[str, dict[str, Any]], None],
                 redact: Callable[[str | None], str | None], concurrency: int,
                 rate_overrides: Mapping[str, float | None] | None = None, limits_enabled: bool = True):
        self.planner = planner
        self.destination = destination
        self.service = service
        self.spec = spec
        self.mapping = mapping
        self.transport = transport
        self.commits = checkpointer
        self.s = summary
        self._stats_counted = False  # the transport's requests are in the summary (at the end)
        self.opts = options
        self.stop = stop
        self.lock = lock
        self.progress = progress
        self.redact = redact
        self.concurrency = concurrency
        self.rate_overrides = dict(rate_overrides or {})
        self.limits_enabled = limits_enabled
        self._slice_rows: int | None = None  # rows per lookup slice (`_lookup_slice_rows`)
        self.fatal: BaseException | None = None
        self.failure: str | None = None  # why the first row that could not be delivered was not
        self.pending: dict[str, list[str]] = {}  # token -> keys whose outcome arrives later (see _compact)
        self._token_of: dict[str, str] = {}  # key still without an outcome -> its token in `pending`
        self._stale = 0  # entries of `pending` settled (or re-sent under another token) since _compact
        self._held_bytes = 0  # bodies of requests queued or being sent (see QUEUE_BYTES)
        self._room = asyncio.Event()  # set when held bytes were released
        self._outside_noted = False  # `outside_note` said (once a run)
        self._task_failed = False  # a sender task failed (see _worker)

    # --- the phase --------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        read_ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dinsync-read")
        work_ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dinsync-map")
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.opts.queue_size(self.concurrency))
        failure: BaseException | None = None
        try:
            if True:  # the transport is open (entered by the caller, around the pre-flight check too)
                try:
                    await within_grace(hooks.limited(self.destination, "begin_run",
                                                     self.destination.begin_run(self.transport, self.spec)),
                                       self.stop, self.opts.grace_seconds)
                except SendingStopped:  # stopped while its requests were retried (Attentive's key check):
                    return  # nothing was sent, and the run ends cancelled (SyncRun._run), not failed
                workers = [asyncio.create_task(self._worker(queue)) for _ in range(self.concurrency)]
                producer = asyncio.create_task(self._produce(queue, loop, read_ex, work_ex))
                try:
                    await self._unless_a_worker_fails(producer, workers)
                    owed = len(workers)  # end markers, one per sender task
                    while owed and not self._stopping():  # (a stop: put by _join as room comes)
                        put = asyncio.ensure_future(queue.put(None))
                        await self._unless_a_worker_fails(put, workers, stoppable=True)
                        if put.cancelled():
                            break
                        owed -= 1
                    await self._join(workers, queue, owed)
                except BaseException:
                    await cancel_and_wait([producer, *workers])
                    if self.fatal is None:
                        raise
                if self.fatal is None:
                    await hooks.limited(self.destination, "finish_run",
                                        self.destination.finish_run(self.transport, self.spec))
                    if self._token_of and not self._stopping():
                        self.progress("note", {"message": waiting_note(len(self._token_of),
                                                                       self.opts.outcome_timeout_seconds)})
                        settled = await self._settle_unless_stopped()
                        self._settled(settled)
                        if settled.error is not None and self.fatal is None:  # committed below, then raised
                            err = settled.error
                            self.fatal = type(err)(self.redact(err.message), err.hint)
        except BaseException as exc:
            failure = exc
            raise
        finally:
            # whatever ended the phase (a destination's start check that failed too): optional for a
            # plugin's transport (the README names deliver, settle and resolve); added, as an early
            # pre-flight check (`_check_first`) counted its own requests already
            stats = getattr(self.transport, "transport_stats", TransportStats)()
            self.s.requests += stats.requests
            self.s.throttled += stats.throttled
            self.s.request_rates.update(stats.rates)
            self._stats_counted = True
            try:
                if not self.lock.lost.is_set():
                    await self._last_checkpoint(failure or self.fatal)
            finally:
                read_ex.shutdown(wait=True, cancel_futures=True)
                work_ex.shutdown(wait=True, cancel_futures=True)
                self.commits.close()
        self.s.pending = len(self._token_of)

    async def _last_checkpoint(self, failure: BaseException | None) -> None:
        """Commit what was acknowledged since the last checkpoint. When the run failed already
        (`failure`: a commit, the destination, a bug) and this commit fails too, the run's error
        stays the first one, which ended it (the warehouse gone after a failed commit said only
        that); this one is a note. A stop after a commit failed commits nothing more: a second commit
        is as likely to fail, and as slowly (a lock held on the snapshot: lock_timeout), while the
        orchestrator's grace period runs out before the run records its end."""
        if self.commits.failed.is_set() and self.stop.requested:
            self.progress("note", {"message": "stopped after a checkpoint's commit failed: the rows acknowledged "
                                              "since are not committed; the next run sends them again"})
            return
        try:
            await self.commits.checkpoint(force=True)
        except Exception as exc:
            if failure is None:
                raise
            why = describe_error(exc) if not isinstance(exc, DinsyncError) else exc.message
            self.progress("note", {"message": self.redact(
                f"the last checkpoint failed too ({why}): the rows acknowledged since the one before are sent "
                "again by the next run")})

    def counts_so_far(self) -> dict[str, int]:
        """The run's counts now, as the run log keeps them (see Checkpointer: recorded at checkpoints);
        not `pending`, known at the end only (an abandoned run's is NULL: unknown)."""
        from ..state.store import RUN_COUNTERS

        counts = {name: int(getattr(self.s, name)) for name in RUN_COUNTERS if name != "pending"}
        if not self._stats_counted:
            stats = getattr(self.transport, "transport_stats", TransportStats)()
            counts["requests"] += stats.requests
            counts["throttled"] += stats.throttled
        return counts

    def _stopping(self) -> bool:
        """Nothing more is started: a stop, a lost lock, a checkpoint whose commit failed or a sender
        task that failed (the run fails with that error, raised by the sender task)."""
        return (self.stop.requested or self.lock.lost.is_set() or self.commits.failed.is_set()
                or self._task_failed)

    async def _settle_unless_stopped(self) -> Delivered:
        """The transport's wait for this run's outcomes (an import, a bulk job: minutes), given up
        at a stop: transports wait on their own, and SIGTERM did nothing until the outcomes came
        or the outcome timeout (10 minutes) ran out. What has arrived (`ready`, optional for a
        plugin) is committed; the rest stays pending, read by the next run."""
        self._compact()
        timeout = self.opts.outcome_timeout_seconds
        task = asyncio.ensure_future(hooks.limited(self.destination, hooks.transport_hook(self.transport, "settle"),
                                                   self.transport.settle(self.pending, timeout), extra=timeout))
        while not task.done():
            await asyncio.wait({task}, timeout=0.2)
            if not task.done() and self._stopping():
                await cancel_and_wait([task])
                ready = getattr(self.transport, "ready", None)
                return ready() if ready is not None else Delivered([], [])
        return task.result()

    async def _unless_a_worker_fails(self, task: asyncio.Future, workers: list[asyncio.Task],
                                     stoppable: bool = False) -> None:
        """Wait for `task`, but raise at once the error of a sender task that fails meanwhile (a
        commit that fails, a bug): the reader may be blocked on a full queue that no task drains
        any more, and would wait forever. `stoppable`: a stop gives `task` up (cancelled; it may
        have completed all the same)."""
        while not task.done():
            if stoppable and self._stopping():
                await cancel_and_wait([task])
                return
            running = [w for w in workers if not w.done()]
            await asyncio.wait([task, *running], return_when=asyncio.FIRST_COMPLETED,
                               timeout=0.2 if stoppable else None)
            for w in workers:
                if w.done() and not w.cancelled() and w.exception() is not None:
                    task.cancel()
                    w.result()
        task.result()

    async def _join(self, workers: list[asyncio.Task], queue: asyncio.Queue, owed: int = 0) -> None:
        """Wait for the workers; once a stop is requested, give requests in flight a grace period
        (counted from then: a full queue waited on sender tasks busy with slow answers, however
        long they took). `owed`: end markers not queued yet (the queue was full at the stop), put
        as room comes, so that idle sender tasks end at once."""
        loop = asyncio.get_running_loop()
        pending = set(workers)
        deadline = None
        while pending:
            while owed and not queue.full():
                queue.put_nowait(None)
                owed -= 1
            done, pending = await asyncio.wait(pending, timeout=0.05 if owed else 0.2,
                                               return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()  # re-raise a worker's error
            if pending and self._stopping():
                deadline = loop.time() + self.opts.grace_seconds if deadline is None else deadline
                if loop.time() >= deadline:
                    await cancel_and_wait(pending)
                    return

    # --- reading and mapping -------------------------------------------------------------
    async def _produce(self, queue: asyncio.Queue, loop, read_ex, work_ex) -> None:
        batches = self.planner.stream_sendable(self.opts.batch_rows)
        try:
            while not self._stopping() and self.fatal is None:
                batch = await loop.run_in_executor(read_ex, _read, batches)
                if batch is None:
                    break
                for part in slices_by_bytes(batch):
                    if self._stopping() or self.fatal is not None:
                        break
                    await self._map_and_enqueue(part, queue, loop, work_ex)
        finally:
            await loop.run_in_executor(read_ex, batches.close)
        if self._stopping():  # requests not started yet are dropped: planned again next run
            while not queue.empty():
                queue.get_nowait()

    async def _map_and_enqueue(self, batch, queue: asyncio.Queue, loop, work_ex) -> None:
        mapped, rejections = await loop.run_in_executor(work_ex, self._map, batch)
        self._record_rejections(rejections)
        if rejections.height and not self.lock.lost.is_set():  # not only after an answer: a run of rows
            await self.commits.checkpoint()  # all rejected would hold every one of them until its end
        if not (self.spec.mode == "update" and self.service.update_needs_lookup):
            await self._enqueue(mapped, queue, loop, work_ex)
            return
        # Lookups are slow (one request per row): rows are looked up, prepared and queued a slice
        # at a time, so that writes of the rows found overlap the lookups of the next, and the next
        # slice is looked up while this one is queued (no gap at the endpoint). Rows the snapshot
        # vouches for (`lookup_rows` "added") are queued at once, whole: slicing them too would
        # only cut their writes into smaller requests (Iterable's bulk of 1,000 into ten of 100).
        if self.service.lookup_rows == "all":
            looked_up, vouched = mapped, None
        else:
            added = pl.col("_op") == "added"
            looked_up, vouched = mapped.filter(added), mapped.filter(~added)
        size = await self._lookup_slice_rows(looked_up)
        parts = [looked_up.slice(start, size) for start in range(0, looked_up.height, size)]
        lookups = [asyncio.ensure_future(self._only_existing(part)) for part in parts[:LOOKUP_SLICES - 1]]
        try:
            if vouched is not None and vouched.height:
                await self._enqueue(vouched, queue, loop, work_ex)
            for i in range(len(parts)):
                if self._stopping() or self.fatal is not None:
                    break
                if len(lookups) < len(parts):
                    lookups.append(asyncio.ensure_future(self._only_existing(parts[len(lookups)])))
                # a stop gives the lookups up: nothing more is written, whatever they answer
                if not await self._unless_stopping(lookups[i]):
                    break
                found = lookups[i].result()
                if self._stopping() or self.fatal is not None:
                    break
                await self._enqueue(found, queue, loop, work_ex)
        finally:
            await cancel_and_wait(lookups)

    async def _enqueue(self, mapped: pl.DataFrame, queue: asyncio.Queue, loop, work_ex) -> None:
        keys = mapped.get_column("_key")  # (held here: a plugin's prepare() may change the frame it is given)
        if hooks.hook_seconds(self.destination) is None:  # (dinsync's own: on the mapping thread)
            prepared = await loop.run_in_executor(work_ex, self.destination.prepare, mapped, self.spec)
        else:
            prepared = await hooks.call(self.destination, "prepare", self.destination.prepare, mapped, self.spec)
        for rej in prepared.rejections:
            self.commits.rejected(rej.key, rej.field, self.redact(rej.reason), park=rej.park)
        rejected = len({rej.key for rej in prepared.rejections})  # a row may be rejected for several fields
        # keys withheld as duplicates (the platform reads them as one record) count with the model's
        # duplicated keys, not as rejected (a row both refused and withheld counts as refused)
        if rejected:
            refused = len({rej.key for rej in prepared.rejections if not rej.duplicate})
            self.s.rejected += refused
            self.s.duplicate_keys += rejected - refused
        # each request's keys as the pipeline holds them: a plugin's held to the frame it was given
        # (a built-in destination is trusted: its requests' own lists, no copy on the hot path)
        held = ([r.keys for r in prepared.requests] if hooks.hook_seconds(self.destination) is None
                else self._held_to_frame(keys, prepared.requests))
        if sum(map(len, held)) + rejected < keys.len():
            self._unprepared(keys, held, prepared.rejections)
        for request, request_keys in zip(prepared.requests, held):
            if self._stopping() or self.fatal is not None:
                break
            size = _body_bytes(request)
            while self._held_bytes and self._held_bytes + size > QUEUE_BYTES:
                self._room.clear()
                if not await self._unless_stopping(self._room.wait()):
                    return
                if self._stopping() or self.fatal is not None:
                    return
            self._held_bytes += size
            if not queue.full():
                queue.put_nowait((request, request_keys))
            elif not await self._unless_stopping(queue.put((request, request_keys))):  # (sender tasks busy with slow answers)
                self._held_bytes -= size
                return

    async def _unless_stopping(self, waiting) -> bool:
        """Await `waiting` (room in the queue, a slice's lookups); False, given up, once the run
        stops: the reader waited on sender tasks busy with slow answers (or on slow lookups), and
        the grace period never began."""
        task = asyncio.ensure_future(waiting)
        await self._unless_a_worker_fails(task, [], stoppable=True)
        return not task.cancelled()

    def _held_to_frame(self, keys: pl.Series, requests) -> list[list[str]]:
        """The keys of each of a plugin's `requests` that are keys of the frame its prepare() was
        given (`keys`), in order, copied (its transport may change a request's own list): a key of
        another batch's row, or of no row, acknowledged with the request, entered the snapshot (a
        row whose own request failed, never sent again) and counted as acknowledged."""
        frame = set(keys.to_list())
        held = []
        for request in requests:
            own = [k for k in request.keys if k in frame]
            if len(own) < len(request.keys) and not self._outside_noted:
                self._outside_noted = True
                outside = next(k for k in request.keys if k not in frame)
                who = self.destination.type_name or type(self.destination).__name__
                self.progress("note", {"message": self.redact(outside_note(who, str(outside)))})
            held.append(own)
        return held

    def _unprepared(self, keys: pl.Series, held: list[list[str]], rejections) -> None:
        """Rows prepare() neither put in a request nor rejected (a plugin's bug): `failed`, planned
        again next run, instead of left out of the run's counts and rejections without a word."""
        told = {k for request_keys in held for k in request_keys}
        told.update(r.key for r in rejections)
        for key in keys.filter(~keys.is_in(list(told))).to_list():
            self._note(RecordResult(key, "failed", NOT_PREPARED))

    def _map(self, batch):
        """Map an Arrow batch of the plan (converted here, off the event loop: ~2 ms a batch)."""
        with doing("mapping the plan's rows to send"):
            out = map_plan_batch(batch, self.mapping, getattr(self.planner, "declared_scale_values", ()))
        return out.frame, out.rejections

    def _record_rejections(self, rejections: pl.DataFrame) -> None:
        if rejections.height == 0:
            return
        self.s.rejected += rejections["_key"].n_unique()
        for key, field, reason in rejections.select("_key", "field", "reason").iter_rows():
            self.commits.rejected(key, field, self.redact(reason))

    async def _lookup_slice_rows(self, mapped: pl.DataFrame) -> int:
        """Rows per lookup slice: about LOOKUP_SLICE_SECONDS of lookups at the lookup endpoint's rate
        (its rows per request times its requests/s; LOOKUP_SLICE_ROWS when it has no limit). A slice's
        rows are written once its last lookup answered: with slices of 1000 rows at Attentive's 150
        lookups/s (the next slice overtaking the current one, before in-flight places were first
        come, first in), the first write came ~13 s into a run, and writes paced at the lookups' own
        rate never made that up."""
        if self._slice_rows is None:
            sample = mapped.head(LOOKUP_SLICE_ROWS)
            requests = await hooks.call(self.destination, "lookup_requests", self.destination.lookup_requests,
                                        sample["_key"].to_list(), sample["_id"].to_list(), self.spec)
            if not requests:  # no row to look up in this batch: decided by the next one that has some
                return LOOKUP_SLICE_ROWS
            endpoint = requests[0].endpoint
            limit = self.destination.limits.get(endpoint)
            rate = self.rate_overrides.get(endpoint, limit.rate if limit is not None else None)
            rows = LOOKUP_SLICE_ROWS
            if rate and self.limits_enabled:
                per_request = sum(len(r.keys) for r in requests) / len(requests)
                rows = round(rate * per_request * LOOKUP_SLICE_SECONDS)
            self._slice_rows = max(LOOKUP_SLICE_MIN_ROWS, min(LOOKUP_SLICE_ROWS, rows))
        return self._slice_rows

    async def _lookups_answered(self, lookups: list) -> list:
        """Each lookup's Delivered, or what it raised (as `gather(return_exceptions=True)`). Once one
        raises that nothing more is sent (an outage found, credentials refused), the lookups still in
        flight are cancelled: their answers would not be used, and waiting for them held the run up to
        a timeout more (Attentive's lookups cut at the default 30 s: found down after ~60 s, the run
        ended after 93 s). (A read: a cancelled lookup changed nothing at the destination.)"""
        tasks = [asyncio.ensure_future(self._deliver(r)) for r in lookups]
        try:
            waiting = set(tasks)
            while waiting:
                done, waiting = await asyncio.wait(waiting, return_when=asyncio.FIRST_EXCEPTION)
                if any(not t.cancelled() and isinstance(t.exception(), (DestinationAuthError, DestinationUnreachableError))
                       for t in done):
                    break
        finally:
            await cancel_and_wait(tasks)  # (a task done already is left as it is)
        return [asyncio.CancelledError() if t.cancelled() else t.exception() or t.result() for t in tasks]

    async def _only_existing(self, rows: pl.DataFrame) -> pl.DataFrame:
        """Update mode without an update-only write: `rows` (a slice of those the snapshot does not
        vouch for, see `_map_and_enqueue`) are looked up, and only records that exist are kept."""
        if rows.height == 0:
            return rows
        if self._stopping():
            return rows.clear()  # not looked up: not sent
        lookups = await hooks.call(self.destination, "lookup_requests", self.destination.lookup_requests,
                                   rows["_key"].to_list(), rows["_id"].to_list(), self.spec)
        missing: set[str] = set()
        answers = await self._lookups_answered(lookups)
        errors = [a for a in answers if isinstance(a, BaseException)]
        if any(isinstance(e, SendingStopped) for e in errors) and all(
                isinstance(e, (SendingStopped, asyncio.CancelledError)) for e in errors):
            return rows.clear()  # the run is stopping: not all looked up, none sent
        if errors:
            raise next((e for e in errors if not isinstance(e, asyncio.CancelledError)), errors[0])
        for delivered in answers:
            for r in delivered.problems:
                missing.add(r.key)
                self._note(r)
        if self._collect_ready() and not self.lock.lost.is_set():
            await self.commits.checkpoint()
        return rows.filter(~pl.col("_key").is_in(list(missing))) if missing else rows

    # --- sending -----------------------------------------------------------------------
    async def _deliver(self, request, keys: list[str] | None = None):
        # a plugin's transport, or its parse(), may change the list of keys it is handed (a destination
        # whose hooks have no time limit, a built-in one, is trusted to keep it: no copy on its hot path);
        # `keys`: the request's keys as held when it was prepared (see `_held_to_frame`)
        if keys is None:
            keys = request.keys if hooks.hook_seconds(self.destination) is None else list(request.keys)
        try:
            return held_to(keys, await hooks.limited(self.destination, hooks.transport_hook(self.transport, "deliver"),
                                                     self.transport.deliver(request)))
        except (DestinationAuthError, DestinationUnreachableError) as exc:  # nothing more is sent
            self.fatal = self.fatal or type(exc)(self.redact(exc.message), exc.hint)
            raise

    async def _worker(self, queue: asyncio.Queue) -> None:
        """A sender task. One that fails (a bug, a plugin's transport raising) fails the run, which
        learns of it only when the event loop next runs it: the others start no request meanwhile."""
        try:
            await self._send_queued(queue)
        except asyncio.CancelledError:
            raise
        except BaseException:
            self._task_failed = True
            raise

    async def _send_queued(self, queue: asyncio.Queue) -> None:
        while True:
            item = await queue.get()
            if item is None:
                return
            request, keys = item  # keys: as held when prepared (a plugin's: those of its frame, copied)
            rows, size = len(keys), _body_bytes(request)  # (as queued: a plugin may change the request)
            try:
                if self._stopping():
                    continue
                self.s.sent += rows
                try:
                    delivered = await self._deliver(request, keys)
                except SendingStopped:  # a signal while it waited for its rate slot: not sent, planned again
                    self.s.sent -= rows
                    # and the worker stays, to take (unsent) what is queued until the end: the reader may
                    # be waiting for room in a full queue, and would wait forever once every worker left
                    continue
                except BaseException:  # sending stopped (credentials, an outage, a signal): not sent
                    self.s.sent -= rows
                    raise
            finally:
                self._held_bytes -= size
                self._room.set()
            if delivered.ok:
                self.commits.acknowledged(delivered.ok)
                self.s.acknowledged += len(delivered.ok)
            for r in delivered.problems:
                self._note(r)
            for token, keys in delivered.pending.items():
                self._stale += sum(1 for k in keys if k in self._token_of)
                self.pending.setdefault(token, []).extend(keys)
                self._token_of.update(dict.fromkeys(keys, token))
                self.commits.pending(token, keys)
            self._collect_ready()
            self.progress("sent", {"rows": rows})
            if not self.lock.lost.is_set():
                await self.commits.checkpoint()

    def _note(self, r: RecordResult) -> None:
        """Count and record a record that was not acknowledged."""
        r = self._checked(r)
        self._count(r)
        if r.status == "rejected":
            self.commits.rejected(r.key, r.field, self.redact(r.reason) or "rejected")
        elif r.status != "ok":  # ok: e.g. a lookup that found the record
            self.commits.not_delivered(RecordResult(r.key, r.status, self.redact(r.reason), self.redact(r.field)))
            if r.status == "failed" and self.failure is None:
                self.failure = self.redact(r.reason)

    def _checked(self, r: RecordResult) -> RecordResult:
        """`r`, but `failed` naming its status when that is none of the documented ones (a plugin's
        bug): counted nowhere, the row was lost from the run's figures (sent, but neither
        acknowledged, refused nor failed) and the run said success."""
        if r.status in RECORD_STATUSES:
            return r
        who = self.destination.type_name or type(self.destination).__name__
        return RecordResult(r.key, "failed", f"{who} gave the record status {str(r.status)!r}, none of "
                            f"{', '.join(RECORD_STATUSES)} (reason: {r.reason or 'none'})", r.field)

    def _count(self, r: RecordResult) -> None:
        if r.status == "rejected":
            self.s.rejected += 1
        elif r.status == "not_found":
            self.s.not_found += 1
        elif r.status == "failed":
            self.s.failed += 1

    def _collect_ready(self) -> bool:
        """Outcomes of pending records that arrived meanwhile (`Transport.ready`, which does not
        wait): committed at the next checkpoint."""
        if not self._token_of:
            return False
        ready = getattr(self.transport, "ready", None)  # optional: without it, outcomes come by settle()
        if ready is None:
            return False
        arrived = ready()
        if not (arrived.ok or arrived.problems):
            return False
        self._settled(arrived)
        return True

    def _settled(self, settled) -> None:
        """Outcomes of records that were pending earlier in this run; what stays pending is kept.
        Costs the outcomes' size, not the pending records': a run of 1M rows whose bulk jobs lag
        hands over one job (256 rows) at a time, and rebuilding every pending list each time made
        such a run quadratic (0.4 s of a blocked event loop per job with 200,000 rows pending)."""
        # each key taken out of `waiting` as its outcome is read (a key told twice counts once): a
        # dict and a set of the keys settled cost ~90 bytes a key at the run's peak (all its files'
        # outcomes come at once at the end of a 1M-row run over SFTP)
        # (refusals first: a record said both acknowledged and refused is not acknowledged)
        waiting = self._token_of
        problems = []
        for r in settled.problems:
            if waiting.pop(r.key, None) is not None:
                r = self._checked(r)
                problems.append(RecordResult(r.key, r.status, self.redact(r.reason), self.redact(r.field)))
                self._count(r)
                if r.status == "failed" and self.failure is None:  # the run's error gives an example
                    self.failure = self.redact(r.reason)
        ok = [k for k in settled.ok if waiting.pop(k, None) is not None]
        self.s.acknowledged += len(ok)
        self.commits.settled(ok, problems)  # applied to the stashed copies of what was sent
        # whatever got no outcome is still pending, whether or not the transport said so
        self._stale += len(ok) + len(problems)
        if self._stale > max(len(waiting), COMPACT_MIN_STALE):
            self._compact()

    def _compact(self) -> None:
        """Drop the settled entries of `pending`'s lists (amortised: once they outnumber the waiting
        ones), keeping each waiting key once, under its latest token."""
        if not self._stale:
            return
        of = self._token_of
        self.pending = {token: rest for token, keys in self.pending.items()
                        if (rest := [k for k in keys if of.get(k) == token])}
        self._stale = 0
