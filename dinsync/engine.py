"""One run of one sync: plan -> stream -> map -> send -> commit.

Threads and tasks:
- the plan is read from the warehouse in one worker thread (Arrow batches, bounded size),
  mapped with Polars in another, and turned into requests by the destination;
- requests go through a bounded asyncio queue (back-pressure to the reader) to N sender tasks;
- acknowledged keys and rejections are committed to the warehouse at checkpoints by a single
  committer thread, so a crash loses at most the rows acknowledged since the last checkpoint
  (they are sent again next run: at-least-once delivery of idempotent upserts).
"""
from __future__ import annotations

import asyncio
import os
import concurrent.futures
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, Callable

import polars as pl

from . import __version__, redaction
from .destinations.base import RecordResult
from .diff.planner import DiffSpec, Planner, PlanStats
from .errors import DestinationAuthError, DinsyncError, DuplicateKeysError, RunSummary
from .mapping import FieldMapping, KeyMapping, map_batch
from .sender import HttpSender
from .state import StateStore
from .warehouses.base import Warehouse

Progress = Callable[[str, dict[str, Any]], None]


@dataclass
class EngineOptions:
    batch_rows: int = 20_000  # rows per Arrow batch read from the plan
    checkpoint_rows: int = 50_000  # commit acknowledged rows at least this often ...
    checkpoint_seconds: float = 5.0  # ... or this often
    queue_requests: int | None = None  # bounded request queue (default 4 x concurrency)
    lock_ttl_seconds: float = 900.0

    @classmethod
    def from_env(cls) -> "EngineOptions":
        """Tuning knobs for operators and tests: DINSYNC_BATCH_ROWS, DINSYNC_CHECKPOINT_ROWS,
        DINSYNC_CHECKPOINT_SECONDS, DINSYNC_LOCK_TTL_SECONDS."""
        opts = cls()
        for name, cast in (("batch_rows", int), ("checkpoint_rows", int), ("checkpoint_seconds", float),
                           ("lock_ttl_seconds", float)):
            value = os.environ.get("DINSYNC_" + name.upper())
            if value:
                setattr(opts, name, cast(value))
        return opts


class SyncRun:
    def __init__(
        self,
        project,
        sync_name: str,
        warehouse: Warehouse,
        *,
        full_refresh: bool = False,
        progress: Progress | None = None,
        options: EngineOptions | None = None,
    ):
        self.project = project
        self.cfg = project.syncs[sync_name]
        self.model = project.models[self.cfg.model]
        self.dest_cfg = project.destinations[self.cfg.destination]
        self.wh = warehouse
        self.full_refresh = full_refresh
        self.progress = progress or (lambda event, data: None)
        self.opts = options or EngineOptions.from_env()
        self.destination = self.dest_cfg.make_destination()
        redaction.register(*self.destination.secrets())
        self.redact = redaction.redact
        self.state = StateStore(warehouse, project.state_schema)
        key_kind = "email" if self.cfg.match_field == "email" else "none"
        self.planner = Planner(
            warehouse,
            DiffSpec(
                sync=self.cfg.name,
                model_sql=self.model.sql,
                key_column=self.cfg.match_column,
                key_normalization=key_kind,
                fields=[(f.column, f.field) for f in self.cfg.fields],
                state_schema=project.state_schema,
            ),
        )
        self.spec = self.cfg.spec()
        key_opts = dict(getattr(self.destination, "key_limits", {}).get(self.cfg.match_field, {"kind": "string"}))
        self.key_mapping = KeyMapping(field=self.cfg.match_field, **key_opts)
        self.field_mappings = [
            FieldMapping(index=i, field=f.field, kind=f.type or "auto") for i, f in enumerate(self.cfg.fields)
        ]

    # --- planning ----------------------------------------------------------------------
    def plan(self) -> PlanStats:
        """Materialise the plan only (dry run). Takes the sync's lock: the plan table is shared
        with a run of the same sync."""
        self.state.migrate()
        run_id = "plan-" + self.state.new_run_id()
        self.state.acquire_lock(self.cfg.name, run_id, self.opts.lock_ttl_seconds)
        try:
            self.planner.ensure_state()
            return self.planner.plan(full_refresh=self.full_refresh)
        finally:
            self.state.release_lock(self.cfg.name, run_id)

    # --- a full run --------------------------------------------------------------------
    def run(self) -> RunSummary:
        started = time.monotonic()
        self.state.migrate()
        run_id = self.state.new_run_id()
        summary = RunSummary(sync=self.cfg.name, run_id=run_id)
        self.summary = summary
        self.state.acquire_lock(self.cfg.name, run_id, self.opts.lock_ttl_seconds)
        try:
            self.state.start_run(summary, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None),
                                 self.full_refresh, __version__)
            try:
                self._run(summary)
            except Exception as exc:  # the run log records every failure, then the CLI reports it
                summary.status = "failed"
                message = exc.message if isinstance(exc, DinsyncError) else f"{type(exc).__name__}: {exc}"
                summary.error = self.redact(message)
                if not isinstance(exc, DinsyncError):
                    raise DinsyncError(summary.error, "an unexpected error; set DINSYNC_DEBUG=1 for a traceback") from exc
                raise type(exc)(summary.error, exc.hint) from None
            finally:
                summary.seconds = time.monotonic() - started
                self.state.finish_run(summary)
        finally:
            self.state.release_lock(self.cfg.name, run_id)
        return summary

    def _run(self, s: RunSummary) -> None:
        self.progress("plan", {"sync": self.cfg.name})
        self.planner.ensure_state()
        stats = self.planner.plan(full_refresh=self.full_refresh)
        s.added, s.changed, s.removed, s.unchanged = stats.added, stats.changed, stats.removed, stats.unchanged
        s.null_keys, s.duplicate_keys = stats.null_keys, stats.duplicate_keys
        th = self.cfg.thresholds
        if stats.segment_rows and stats.duplicate_rows:
            share = 100.0 * stats.duplicate_rows / stats.segment_rows
            sample = ", ".join(repr(k)[:60] for k, _ in self.planner.duplicates_sample(5))
            text = (f"{stats.duplicate_rows} rows ({share:.1f}%) share {stats.duplicate_keys} duplicated matching "
                    f"keys and were withheld (e.g. {sample})")
            if share > th.max_duplicate_pct:
                raise DuplicateKeysError(
                    self.redact(text) + f"; over the {th.max_duplicate_pct}% limit, nothing was sent",
                    hint="make the model's matching column unique",
                )
            s.warnings.append(self.redact(text))
        if stats.null_keys:
            self.progress("note", {"message": f"{stats.null_keys} rows with a NULL matching key were skipped"})
        self.progress("send", {"total": stats.added + stats.changed})
        with self.wh.streaming():
            asyncio.run(self._pipeline(s))
        self.progress("finish", {})
        s.removed = self.planner.commit_removed()
        if self.full_refresh and not self._fatal:
            self.planner.commit_full_refresh_cleanup()
        if self._fatal is not None:
            raise self._fatal
        if s.failed:
            s.status = "failed"
            s.error = (f"{s.failed} rows could not be delivered (after retries); they stay out of the snapshot and "
                       "are sent again by the next run")
            return
        sendable = s.added + s.changed
        bad = s.rejected + s.not_found
        if sendable and bad and 100.0 * bad / sendable > th.max_rejected_pct:
            s.warnings.append(f"{bad} of {sendable} rows ({100.0 * bad / sendable:.1f}%) were rejected or not found "
                              f"(threshold {th.max_rejected_pct}%)")
        s.status = "warning" if s.warnings else "success"

    # --- the async pipeline ------------------------------------------------------------
    async def _pipeline(self, s: RunSummary) -> None:
        self._fatal: BaseException | None = None
        self._acked: list[str] = []
        self._rejections: list[tuple] = []
        self._last_checkpoint = time.monotonic()
        loop = asyncio.get_running_loop()
        read_ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dinsync-read")
        work_ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dinsync-map")
        self._commit_ex = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="dinsync-commit")
        self._commit_lock = asyncio.Lock()
        concurrency = self.dest_cfg.concurrency
        queue: asyncio.Queue = asyncio.Queue(maxsize=self.opts.queue_requests or 4 * concurrency)
        sender = HttpSender(
            self.destination,
            rate_overrides=dict(self.dest_cfg.rate_limits),
            limits_enabled=self.dest_cfg.limits_enabled,
            timeout=self.dest_cfg.timeout_seconds,
            connections=concurrency,
        )
        try:
            async with sender:
                workers = [asyncio.create_task(self._worker(sender, queue, s)) for _ in range(concurrency)]
                producer = asyncio.create_task(self._produce(sender, queue, s, loop, read_ex, work_ex))
                try:
                    await producer
                    for _ in workers:
                        await queue.put(None)
                    await asyncio.gather(*workers)
                except BaseException:
                    producer.cancel()
                    for w in workers:
                        w.cancel()
                    await asyncio.gather(producer, *workers, return_exceptions=True)
                    if self._fatal is None:
                        raise
                s.requests = sender.stats.requests
                s.throttled = sender.stats.throttled
                for name, ep_stats in sender.stats.endpoints.items():
                    rate = ep_stats.achieved_rate()
                    if rate is not None:
                        s.request_rates[name] = round(rate, 3)
        finally:
            await self._checkpoint(force=True)
            read_ex.shutdown(wait=True, cancel_futures=True)
            work_ex.shutdown(wait=True, cancel_futures=True)
            self._commit_ex.shutdown(wait=True)

    async def _produce(self, sender, queue, s: RunSummary, loop, read_ex, work_ex) -> None:
        batches = self.planner.stream_sendable(self.opts.batch_rows)
        try:
            while True:
                batch = await loop.run_in_executor(read_ex, next, batches, None)
                if batch is None:
                    break
                frame = pl.from_arrow(batch)
                mapped, rejections = await loop.run_in_executor(work_ex, self._map, frame)
                self._record_rejections(rejections, s)
                if self.cfg.mode == "update" and self.destination.update_needs_lookup:
                    mapped = await self._only_existing(sender, mapped, s)
                prepared = await loop.run_in_executor(work_ex, self.destination.prepare, mapped, self.spec)
                for rej in prepared.rejections:
                    self._rejections.append((rej.key, rej.field, "rejected", self.redact(rej.reason)))
                    s.rejected += 1
                for request in prepared.requests:
                    if self._fatal is not None:
                        return
                    await queue.put(request)
        finally:
            await loop.run_in_executor(read_ex, batches.close)

    def _map(self, frame: pl.DataFrame):
        out = map_batch(
            frame,
            self.key_mapping,
            self.field_mappings,
            max_row_bytes=getattr(self.destination, "max_row_bytes", None),
            phone_region=self.destination.options.get("phone_region"),
        )
        return out.frame, out.rejections

    def _record_rejections(self, rejections: pl.DataFrame, s: RunSummary) -> None:
        if rejections.height == 0:
            return
        s.rejected += rejections["_key"].n_unique()
        for key, field, reason in rejections.select("_key", "field", "reason").iter_rows():
            self._rejections.append((key, field, "rejected", self.redact(reason)))

    async def _only_existing(self, sender, mapped: pl.DataFrame, s: RunSummary) -> pl.DataFrame:
        """Update mode: rows new to the sync are looked up; only users that exist are kept."""
        added = mapped.filter(pl.col("_op") == "added")
        if added.height == 0:
            return mapped
        lookups = self.destination.lookup_requests(added["_key"].to_list(), added["_id"].to_list(), self.spec)
        if not lookups:
            return mapped
        missing: set[str] = set()
        for start in range(0, len(lookups), 1000):
            chunk = lookups[start : start + 1000]
            results = await asyncio.gather(*(sender.deliver(r) for r in chunk))
            for delivered in results:
                for r in delivered.problems:
                    missing.add(r.key)
                    self._note(r, s)
        return mapped.filter(~pl.col("_key").is_in(list(missing))) if missing else mapped

    async def _worker(self, sender, queue: asyncio.Queue, s: RunSummary) -> None:
        while True:
            request = await queue.get()
            if request is None:
                return
            s.sent += len(request.keys)
            try:
                delivered = await sender.deliver(request)
            except DestinationAuthError as exc:
                self._fatal = DestinationAuthError(self.redact(exc.message), exc.hint)
                raise
            self._acked.extend(delivered.ok)
            s.acknowledged += len(delivered.ok)
            for r in delivered.problems:
                self._note(r, s)
            self.progress("sent", {"rows": len(request.keys)})
            await self._checkpoint()

    def _note(self, r: RecordResult, s: RunSummary) -> None:
        """Count a record that was not acknowledged (or, for lookups, one that was)."""
        if r.status == "ok":
            self._acked.append(r.key)
            s.acknowledged += 1
            return
        if r.status == "rejected":
            s.rejected += 1
        elif r.status == "not_found":
            s.not_found += 1
        else:
            s.failed += 1
        self._rejections.append((r.key, None, r.status, self.redact(r.reason) or r.status))

    async def _checkpoint(self, force: bool = False) -> None:
        due = len(self._acked) >= self.opts.checkpoint_rows or (
            time.monotonic() - self._last_checkpoint >= self.opts.checkpoint_seconds
        )
        if not (force or due) or self._commit_lock.locked() and not force:
            return
        async with self._commit_lock:
            acked, self._acked = self._acked, []
            rejections, self._rejections = self._rejections, []
            self._last_checkpoint = time.monotonic()
            if not acked and not rejections:
                return
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(self._commit_ex, self._commit, acked, rejections)

    def _commit(self, acked: list[str], rejections: list[tuple]) -> None:
        if acked:
            self.planner.commit_acknowledged(acked)
        if rejections:
            self.state.add_rejections(self.summary.run_id, self.cfg.name, rejections)
        self.state.refresh_lock(self.cfg.name, self.summary.run_id, self.opts.lock_ttl_seconds)
        self.progress("checkpoint", {"acknowledged": len(acked)})
