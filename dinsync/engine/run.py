"""One run of one sync: lock -> plan -> (pre-flight, send, settle) -> commit -> run log.

Roles live in their own modules: `lock` (the sync's lock and its heartbeat), `pipeline` (the
send phase), `commits` (checkpoints), `stop` (SIGTERM/SIGINT), `records` (the mapping and the
destination a sync's runs remember). This module wires them together
and records the run. Nothing here prints: progress goes through the `progress` callback.

A run whose plan has nothing to send never imports polars or aiohttp: the everyday no-op run
after `dbt build` costs one diff in the warehouse and a few small state writes.
"""
from __future__ import annotations

import datetime as dt
import functools
import time
from typing import Any, Callable

from .. import __version__, redaction
from ..destinations import describe_error, hooks
from ..destinations.base import Destination, Preflight, TransportOptions, TransportStats
from ..diff.keycheck import KeyFigures, blocked_hint, blocked_message
from ..diff.planner import DiffSpec, Planner, PlanStats, located_in_model
from ..errors import (ConfigError, ConfigIssue, DinsyncError, DuplicateKeysError, MassChangeError, RunSummary,
                      SendingStopped, is_panic, resource_hint)
from ..state import StateStore
from ..terminal import plural
from ..warehouses.base import Warehouse, doing, what_failed
from ..warehouses.errors import WarehouseObjectMissing
from .lock import LockKeeper, LockLostError
from .options import OUTAGE_SECONDS, EngineOptions, outage_seconds
from .records import SyncRecords
from .stop import StopToken, StoppableWrites, interrupting, within_grace
from .thresholds import mass_change, mass_change_hint, segment_warnings, sync_warnings


def parked_note(n: int, retry: str) -> str:
    """`1 rejected row is parked until its values change (RETRY sends it again)`, `2 rejected rows are
    parked until their values change (RETRY sends them again)`."""
    one = n == 1
    return (f"{plural(n, 'rejected row')} {'is' if one else 'are'} parked until {'its' if one else 'their'} "
            f"values change ({retry} sends {'it' if one else 'them'} again)")


Progress = Callable[[str, dict[str, Any]], None]

# duplicated keys a run lists in the rejections table, the most duplicated first
DUPLICATES_LISTED = 1000

# how the diff reads a matching key of each kind the destinations declare (KeySpec.kind)
KEY_NORMALIZATION = {"email": "email", "phone": "phone", "string": "none"}


def key_normalization(spec) -> str:
    """The diff's normalization of a matching key (KeySpec): its own, else its kind's."""
    return spec.normalization or KEY_NORMALIZATION[spec.kind]


def sync_key(project, sync_name: str) -> tuple[str, str, str, str | None]:
    """(model, matching column, key normalization, phone region) of a sync: the key its plan counts
    duplicates of. Syncs with the same key see the same figures."""
    cfg = project.syncs[sync_name]
    dest_cfg = project.destinations[cfg.destination]
    spec = dest_cfg.destination_class.services[cfg.service].key_fields[cfg.match_field]
    region = dest_cfg.make_destination().default_region() if spec.kind == "phone" else None
    return cfg.model, cfg.match_column, key_normalization(spec), region


def memory_note(wh) -> str | None:
    """What to tell the user when the plan's statements needed more memory than configured."""
    grown = getattr(wh, "grown_to", None)
    return (f"the plan needed more memory than warehouse.memory_limit: it ran again with {grown} (set that "
            "limit to skip the first attempt)") if grown else None


class SyncRun:
    def __init__(
        self,
        project,
        sync_name: str,
        warehouse: Warehouse,
        *,
        full_refresh: bool = False,
        retry_rejected: bool = False,
        progress: Progress | None = None,
        options: EngineOptions | None = None,
        stop: StopToken | None = None,
        force: bool = False,
    ):
        self.project = project
        self.cfg = project.syncs[sync_name]
        self.model = project.models[self.cfg.model]
        self.dest_cfg = project.destinations[self.cfg.destination]
        self.wh = warehouse
        self.full_refresh = full_refresh
        self.retry_rejected = retry_rejected
        self.force = force  # `sync --force`: past `max_changed_pct` and `max_removed_pct`
        self.progress = progress or (lambda event, data: None)
        self.opts = options or EngineOptions.from_env()
        outage_seconds(OUTAGE_SECONDS)  # an unusable DINSYNC_OUTAGE_SECONDS stops the run here (its sender reads it)
        self.stop = stop or StopToken()
        self.writes = StoppableWrites(self.stop, warehouse)  # what a stop may cut short
        self.key_figures: KeyFigures | None = None  # the matching key's figures, once planned
        self._moved: str | None = None  # the destination a run found recorded, when the file names another
        self.notes: list[str] = []  # of a dry run (plan), for its report
        self.parked = 0  # of a dry run: rows parked as rejected (counted unchanged unless they changed)
        self.destination = self.dest_cfg.make_destination()
        self.service = self.destination.service(self.cfg.service)
        self.key_spec = self.service.key_fields[self.cfg.match_field]
        redaction.register(*self.destination.secrets(), partial=True)
        self.redact = redaction.redact
        self.failure: str | None = None  # why the first row that could not be delivered was not
        self.hint: str | None = None  # for a run that ended failed without an exception
        self.uncommitted: str | None = None  # why a stopped run's commit failed (see _send)
        self.state = StateStore(warehouse, project.state_schema)
        self.spec = self.cfg.spec()
        self.spec.kinds = {f.field: (f.type if f.type != "auto" else self.service.field_kind(f.field, f.custom))
                           for f in self.cfg.fields}
        self.planner = Planner(
            warehouse,
            DiffSpec(
                sync=self.cfg.name,
                model_sql=self.model.sql,
                key_column=self.cfg.match_column,
                key_normalization=self._key_normalization(),
                fields=[(f.column, f.field) for f in self.cfg.fields],
                state_schema=project.state_schema,
                phone_region=self.destination.default_region() if self.key_spec.kind == "phone" else None,
            ),
            cache_room=len(project.syncs),
        )
        self.records = SyncRecords(self.state, self.planner, self.cfg, self.dest_cfg,
                                   account=self.destination.account(),
                                   phone_region=self.destination.default_region(),
                                   phone_key=self.key_spec.kind == "phone",
                                   phone_fields=tuple(f for f, kind in self.spec.kinds.items() if kind == "phone"))

    @staticmethod
    def _preload(phones: bool) -> None:
        """The plan has rows to look at: import Polars, the HTTP client, phone parsing (`phones`:
        the key or a field is a phone; otherwise it is imported at a first parse, if any: ~30 ms of
        CPU that an email-keyed sync would take from the plan on a 2-core machine) and, last,
        pyarrow (what the stream's first batch needs) in the background while the warehouse builds
        it (DuckDB releases the GIL), so that sending starts without waiting for them (~0.15-0.3 s;
        pyarrow too: 1M rows, 2% churn, median 0.949 vs 0.984 s over eight pairs, 2026-12-02).
        Polars' import puts a SIGINT handler of its own in front of ours, from any thread; until
        the main thread installs ours again when sending starts (`StopToken.rearm`), Polars'
        handler hands the signal on to ours. (Static: the planner keeps it, and a bound method made
        the run and its planner a cycle, freed only by a full collection, after every run.)"""
        import threading

        def load() -> None:
            try:
                import asyncio  # noqa: F401

                if phones:
                    import phonenumbers  # noqa: F401
                import polars  # noqa: F401

                from .. import sender  # noqa: F401
                from . import pipeline  # noqa: F401
                import pyarrow  # noqa: F401
            except Exception:  # whatever fails is imported (and reported) again when needed
                pass

        threading.Thread(target=load, name="dinsync-preload", daemon=True).start()

    def _key_normalization(self) -> str:
        """The diff normalises keys the way the mapping does: declared by the destination."""
        return key_normalization(self.key_spec)

    # --- planning ----------------------------------------------------------------------
    def plan(self) -> PlanStats:
        """Materialise the plan only (dry run). Takes the sync's lock: the plan table is shared
        with a run of the same sync."""
        self.state.migrate()
        run_id = "plan-" + self.state.new_run_id()
        lock = LockKeeper(self.state, self.cfg.name, run_id, self.opts.lock_ttl_seconds, self.opts.heartbeat_seconds)
        lock.acquire()
        try:
            return self._dry_plan()
        except DinsyncError as exc:
            located = self._located(exc)
            if located is exc:
                raise
            raise located from None
        finally:
            lock.release()

    def _dry_plan(self) -> PlanStats:
        """plan()'s work, under the sync's lock."""
        self.planner.ensure_state(dry_run=True)
        moved = self.records.moved_from()  # a new destination holds none of the rows
        if moved is not None:
            self.notes.append(self.records.moved_note(moved))
        for note in (self.records.compare_if_remapped(dry_run=True),
                     self.records.compare_if_retyped(dry_run=True),
                     self.records.reread_if_region_changed(dry_run=True),
                     self.records.resend_if_forms_changed(self.destination.value_forms(self.spec), dry_run=True),
                     self.records.reread_if_phone_key_rule_changed(dry_run=True)):
            if note:
                self.notes.append(note)
        shared = None if moved is not None else self.records.resend_if_written_by_others(dry_run=True)
        stats = self.planner.plan(full_refresh=self.full_refresh or moved is not None, dry_run=True)
        if shared and not stats.first_sync:  # (a first sync sends every row anyway)
            self.notes.append(shared)
        renamed = self._renamed_note(stats, moved)
        if renamed:
            self.notes.append(renamed)
        if moved is not None:  # the run forgets the old destination's snapshot first: nothing leaves it
            stats.removed = 0
        self.notes.extend(self._plan_outlook(stats, moved is not None))
        self.planner.drop_prior()  # kept for sending only
        return stats

    def _plan_outlook(self, stats: PlanStats, moved: bool) -> list[str]:
        """What the next sync does before sending, which a dry run cannot count: it reads the
        outcomes of rows an earlier run sent (those acknowledged are not sent again), and it fails
        when the model's duplicated keys block it (the plan's counts would otherwise read as sent).
        Also the parked rows (`self.parked`), which it says it leaves alone, as the run does."""
        notes = []
        self.parked = self.planner.parked_count(staying=True)  # (not those that left the model)
        if self.parked and not self.full_refresh and not moved:  # (as the run says it; those two send them)
            notes.append(parked_note(self.parked, "sync --retry-rejected"))
        pending = 0 if moved or self.full_refresh else sum(self.planner.pending_tokens().values())
        if pending:
            notes.append(f"{pending:,} rows an earlier run sent await their outcome from the destination: the next "
                         "sync reads it first and sends only those not acknowledged (this plan counts them all)")
        limit = self.cfg.thresholds.max_duplicate_pct
        if stats.segment_rows and stats.duplicate_rows:
            figures = KeyFigures.from_plan(self.cfg.model, self.cfg.match_column, self._key_normalization(), stats,
                                           self.planner.duplicates_sample(5))
            if figures.duplicate_pct > limit:
                notes.append(f"the next sync fails before sending anything: model {self.cfg.model} is blocked: "
                             f"{figures.describe(self.redact)}, over the {limit:g}% limit of sync {self.cfg.name}")
                return notes  # (a run that fails earns no warning)
        blocked = self._mass_change(stats)
        if blocked:
            notes.append(f"the next sync fails before sending anything: {blocked} ({mass_change_hint(self.cfg.name)})")
            return notes
        # the segment's size warns whatever the sync sends: a model gone (nearly) empty is told here,
        # not only by the sync after it (its removals leave the snapshot: every row is sent again,
        # whole, once the model is back)
        th = self.cfg.thresholds
        outcome = "exit 4, fail_on_warning" if th.fail_on_warning else "exit 0, fail_on_warning false"
        notes += [f"the next sync warns ({outcome}): {warning}"
                  for warning in segment_warnings(th, stats.segment_rows, stats.null_keys,
                                                  self.state.last_good_segment_rows(self.cfg.name))]
        return notes

    def _renamed_note(self, stats: PlanStats, moved: str | None) -> str | None:
        """A first sync's note naming the syncs not in the project that wrote its records (a rename)."""
        return self.records.renamed_note(self.project.syncs) if stats.first_sync and moved is None else None

    def _mass_change(self, stats: PlanStats) -> str | None:
        """Why this plan fails before sending (`max_changed_pct`, `max_removed_pct`), for the run and
        for `plan` alike; None past them (`--force`, `--full-refresh`) or within them."""
        if self.force or self.full_refresh:
            return None
        return mass_change(self.cfg.thresholds, stats, self.cfg.name, self._undelivered)

    def _undelivered(self) -> int:
        """Parked rows never delivered that the plan just built counts unchanged (max_changed_pct)."""
        return self.planner.parked_count(undelivered=True)

    def _located(self, exc: DinsyncError) -> DinsyncError:
        """A planner's error as the run reports it: refused on the sync's own tables in the state
        schema (state.refusals.naming: exit 3, naming what to grant), else found in the model's SQL
        (_in_model)."""
        from ..state.refusals import naming

        refused = naming(self.wh, self.project.state_schema, self.planner.table_names(), exc)
        return refused if refused is not exc else self._in_model(exc)

    def _in_model(self, exc: DinsyncError) -> DinsyncError:
        """A warehouse error the planner found inside the model's SQL (`model_line`, e.g. a cast
        that fails on a row: `LIMIT 0` at validation cannot see it), named at the model file's line.
        A relation or column of dbt models gone since validation (a dbt run rebuilding them drops
        them) is dbt's to build again: "check the names in the model SQL" sent the user to names
        that came from dbt's manifest and were right a moment before."""
        located = located_in_model(exc, self.model.name, self.project.relative(self.model.path),
                                   self.model.line("sql"))
        if located is not exc and isinstance(exc, WarehouseObjectMissing) and self.model.dbt_models:
            located.hint = (f"dbt models {', '.join(self.model.dbt_models)}: if a dbt run is rebuilding them, run "
                            "again once it has finished; otherwise run `dbt build` (dinsync reads the relations "
                            "dbt built in the warehouse of dinsync.yml)")
        return located

    # --- a full run --------------------------------------------------------------------
    def run(self) -> RunSummary:
        started = self._started = time.monotonic()
        self.records.run_started = time.time()  # what the state records as the time of this run's writes
        run_id = self.state.new_run_id()
        lock = LockKeeper(self.state, self.cfg.name, run_id, self.opts.lock_ttl_seconds, self.opts.heartbeat_seconds)
        self.recorded = False  # the run log has its row (its run_id is worth showing)
        self.end_recorded = False  # ... and its end (status, counts)
        s = self.summary = RunSummary(sync=self.cfg.name, run_id=run_id)
        if not self._begin(lock):
            return self._cancelled_before_start(s)
        try:
            moved = self._moved = self.records.moved_from()
            if moved is not None and not self.full_refresh:
                self.full_refresh = True
                self.progress("note", {"message": self.records.moved_note(moved)})
            # (its INSERT into `runs` may wait for another transaction's lock there: see _begin)
            started_run, _ = self.writes.run(lambda: self.state.start_run(
                s, dt.datetime.now(dt.timezone.utc).replace(tzinfo=None), self.full_refresh, __version__))
            if not started_run:
                return self._cancelled_before_start(s)  # (the sync's lock is released below)
            self.recorded = True
            try:
                with doing("planning"):  # (sending and after: see _run)
                    self._run_unless_interrupted(s, lock)
            except ConfigError as exc:  # e.g. the pre-flight check: already located and redacted
                s.status, s.error = "failed", exc.message
                raise
            except DinsyncError as exc:  # the run log records every failure, then the CLI reports it
                exc = self._located(exc)
                s.status, s.error = "failed", self.redact(exc.message)
                raise type(exc)(s.error, exc.hint) from None
            except BaseException as exc:
                if isinstance(exc, Exception) or is_panic(exc):
                    phase = what_failed(exc)
                    s.status = "failed"
                    s.error = self.redact(describe_error(exc) + (f" (the run was {phase})" if phase else ""))
                    # chained: with DINSYNC_DEBUG=1 the CLI prints the (redacted) traceback
                    raise DinsyncError(s.error, resource_hint(exc) or
                                       "an unexpected error; set DINSYNC_DEBUG=1 for a traceback") from exc
                # KeyboardInterrupt without our handler, SystemExit (rich's, on a closed output pipe):
                # recorded as such, never left "running" by the finally below
                s.status = "failed"
                s.error = (f"interrupted ({type(exc).__name__}): what was acknowledged up to the last checkpoint "
                           "is committed; the rest is sent by the next run")
                raise
            finally:
                s.seconds = time.monotonic() - started
                with doing("recording its end in the run log"):
                    self.end_recorded = self._record_end(s)
                self._prune_rejections()
        finally:
            with doing("releasing the sync's lock"):
                self._release_unless_stopped(lock)
        return s

    def _release_unless_stopped(self, lock: LockKeeper) -> None:
        """The sync's lock released, which a stop cancels when its DELETE waits for another
        transaction's lock on `locks` (a stopped run waited for the lock_timeout there): a next run
        on this machine takes the lock of a run that ended over at once, one elsewhere once it
        expires (see state.locks)."""
        released, _ = self.writes.run(lock.release)
        if not released:
            self.progress("note", {"message": f"stopped by {self.stop.signal_name} while releasing the sync's lock "
                                              "behind another transaction's lock: a next run on this machine takes "
                                              "it over at once, one elsewhere once it expires"})

    def _record_end(self, s: RunSummary) -> bool:
        """The run's end in the run log, which a stop cancels when it waits for another transaction's
        lock on `runs` (a stopped run waited for the lock_timeout there, past the grace period).
        False when cut short: the run stays `running` there until the sync's next run, holding
        the lock, records it `abandoned` (StateStore.abandon_unlocked)."""
        recorded, _ = self.writes.run(lambda: self.state.finish_run(s))
        if not recorded:
            s.status = "cancelled"
            s.error = "; ".join(filter(None, (s.error, (
                f"stopped by {self.stop.signal_name} while recording the run's end behind another transaction's "
                "lock on the run log: what was committed stays; the next run records this one `abandoned`"))))
            return False
        return True

    def _cut_before_sending(self, s: RunSummary) -> None:
        """A stop cut short a write to the state tables before anything was sent (StoppableWrites.cut)."""
        s.status = "cancelled"
        s.error = (f"stopped by {self.stop.signal_name} while writing to the state tables behind another "
                   "transaction's lock: nothing was sent; the next run plans again")

    def _cancelled_before_start(self, s: RunSummary) -> RunSummary:
        """The summary of a run a stop cancelled before the run log had its row."""
        s.status = "cancelled"
        s.error = (f"stopped by {self.stop.signal_name} while waiting for a lock on the state tables: nothing "
                   "was sent; the next run starts again")
        s.seconds = time.monotonic() - self._started
        return s

    def _begin(self, lock: LockKeeper) -> bool:
        """Migrate the state and take the sync's lock; False when a stop came meanwhile and ended
        them. Either may wait for another transaction's lock on a state table (a DBA's LOCK TABLE,
        a backup: up to `lock_timeout`, 15 s by default on PostgreSQL): a stop cancels that wait, as
        it cancels a plan's statements, instead of failing the run with the lock timeout once the
        wait has ended. (Taken all the same, the lock is released by the run, which then ends
        cancelled before planning.)"""
        def begin() -> None:
            with doing("migrating the state tables"):
                self.state.migrate(stopped=lambda: self.stop.requested)
            with doing("taking the sync's lock"):
                lock.acquire()

        # (cut short, no lock was taken: the statement that failed was the one taking it, or before)
        return self.writes.run(begin, whole=True)[0]

    def _record_duplicates(self, s: RunSummary, n_keys: int) -> None:
        """The duplicated keys in the rejections table (status `duplicate`), the most duplicated
        first, at most DUPLICATES_LISTED: all their rows were withheld by this run, whatever the
        threshold decides; they are planned again by every run until the key is on one row. (A
        fan-out join can duplicate every key of a large model: `dinsync check` counts them all.)"""
        model = self.cfg.model
        rows = [(key, self.cfg.match_field, "duplicate",
                 f"withheld: this key is on {n:,} rows of model {model}; a key is sent once it is on one row")
                for key, n in self.planner.duplicates_sample(min(n_keys, DUPLICATES_LISTED))]
        self.state.add_rejections(s.run_id, self.cfg.name, rows)

    def _record_keyless(self, s: RunSummary, n: int) -> None:
        """The rows without a matching key in the rejections table: one row of status `skipped`
        (no key to name), with their count and the column, so that every row not sent has a reason
        there. Written by every run that skips them, as long as the model holds them."""
        empty = "NULL, empty or without a digit" if self.key_spec.kind == "phone" else "NULL or empty"
        reason = (f"skipped: {plural(n, 'row')} of model {self.cfg.model} {'has' if n == 1 else 'have'} a {empty} "
                  f"matching key ({self.cfg.match_column}); a row is sent once its key has a value")
        self.state.add_rejections(s.run_id, self.cfg.name, [(None, self.cfg.match_field, "skipped", reason)])

    def _run_unless_interrupted(self, s: RunSummary, lock: LockKeeper) -> None:
        """`_run`; an exception of the host's signal handler (an orchestrator's timeout: see
        stop.stop_on_host_exceptions) cancels the run, as its signal would on the command line:
        what was acknowledged is committed (the pipeline's last checkpoint), the rest is sent by
        the next run. The API raises it again once the run is recorded. Whatever exception ends
        the run once it came is its consequence (a DuckDB statement it cut short raises
        "interrupted", read as a KeyboardInterrupt)."""
        try:
            self._run(s, lock)
        except BaseException:
            if self.stop.interruption is None:
                raise
            s.status = "cancelled"
            s.error = self._stopped_message()

    def _stopped_message(self, rest: str = "acknowledged rows were committed; the rest is sent by the next run") -> str:
        """The error of a run a stop cancelled, naming the host's exception when one stopped it
        (whether it ended `_run` or landed in an event loop's callback, which logs and drops it),
        then what is left for the next run (`rest`)."""
        raised = self.stop.interruption
        what = "" if raised is None else " (" + type(raised).__name__ + (f": {raised}" if str(raised) else "") + ")"
        if self.uncommitted is not None:
            rest = (f"a checkpoint's commit was cut short ({self.uncommitted}): the rows acknowledged since the last "
                    "one committed are sent again by the next run")
        return self.redact(f"stopped by {self.stop.signal_name}{what}: {rest}")

    def _run(self, s: RunSummary, lock: LockKeeper) -> None:
        self.progress("plan", {"sync": self.cfg.name})
        phones = self.key_spec.kind == "phone" or "phone" in self.spec.kinds.values()
        self.planner.on_changes = functools.partial(self._preload, phones)
        with self.writes.cut() as cut:  # (a new field's column waits for the snapshot's readers)
            self.planner.ensure_state()
        if cut.short:
            return self._cut_before_sending(s)
        if not self._earlier_outcomes_unless_stopped(s, lock):
            s.status = "cancelled"
            s.error = (f"stopped by {self.stop.signal_name} while committing the outcomes of earlier runs: nothing "
                       "was sent; the next run reads them again")
            return
        with self.writes.cut() as cut:  # (the records in `meta`, the snapshot's forgetting)
            if self._moved is not None:
                self.records.forget_old_destination()
            if self.records.mapping_changed():
                # before the run records the new mapping (and forgets what the rows it sends received): a
                # field only the platform can refuse (an attribute that does not exist there) fails the run
                # here, and the mapping fixed again costs nothing; recorded first, every row was resent
                self._check_first()
            self.records.compare_if_remapped()
            self.records.compare_if_retyped()
            self.records.reread_if_region_changed()
            self.records.resend_if_forms_changed(self.destination.value_forms(self.spec))
            self.records.reread_if_phone_key_rule_changed()
            shared = None if self._moved is not None else self.records.resend_if_written_by_others()
        if cut.short:
            return self._cut_before_sending(s)
        stats = None
        if not self.stop.requested:
            # a stop cancels the plan's statements: nothing is sent yet, and a slow model's query
            # would keep the run (and its lock) going for minutes
            _, stats = self.writes.run(lambda: self.planner.plan(full_refresh=self.full_refresh,
                                                                 retry_rejected=self.retry_rejected), whole=True)
        if stats is None:  # stopped before or while planning
            s.status = "cancelled"
            s.error = f"stopped by {self.stop.signal_name} while planning: nothing was sent; the next run plans again"
            return
        s.added, s.changed, s.removed, s.unchanged = stats.added, stats.changed, stats.removed, stats.unchanged
        s.null_keys, s.duplicate_keys = stats.null_keys, stats.duplicate_keys
        s.segment_rows = stats.segment_rows
        s.parked = self.planner.parked_count(staying=True)  # (those that left the model leave the snapshot)
        if shared and not stats.first_sync:  # (a first sync sends every row anyway)
            self.progress("note", {"message": shared})
        renamed = self._renamed_note(stats, self._moved)
        if renamed:
            self.progress("note", {"message": renamed})
        th = self.cfg.thresholds
        figures = self.key_figures = KeyFigures.from_plan(
            self.cfg.model, self.cfg.match_column, self._key_normalization(), stats,
            self.planner.duplicates_sample(5) if stats.duplicate_keys else [])
        with self.writes.cut() as cut:  # (`rejections` behind another transaction's lock)
            if stats.null_keys:  # (a run blocked by duplicates lists them too)
                what = "a NULL phone key (or no digit)" if self.key_spec.kind == "phone" else "a NULL matching key"
                self.progress("note", {"message": f"{plural(stats.null_keys, 'row')} with {what} "
                                                  f"{'was' if stats.null_keys == 1 else 'were'} skipped"})
                self._record_keyless(s, stats.null_keys)
            if stats.duplicate_keys:
                self._record_duplicates(s, stats.duplicate_keys)
        if cut.short:
            return self._cut_before_sending(s)
        if stats.segment_rows and stats.duplicate_rows:
            if figures.duplicate_pct > th.max_duplicate_pct:  # the model is blocked (see dinsync check)
                raise DuplicateKeysError(blocked_message(figures, th.max_duplicate_pct, self.cfg.name, self.redact),
                                         hint=blocked_hint(figures))
            s.warnings.append(f"model {self.cfg.model}: {figures.describe(self.redact)}; these rows were withheld "
                              f"(within the {th.max_duplicate_pct:g}% limit)")
        blocked = self._mass_change(stats)
        if blocked:
            raise MassChangeError(f"nothing was sent: {blocked}", hint=mass_change_hint(self.cfg.name))
        note = memory_note(self.wh)
        if note:
            self.progress("note", {"message": note})
        if s.parked and not self.retry_rejected and not self.full_refresh:  # (those two send them)
            self.progress("note", {"message": parked_note(s.parked, "--retry-rejected")})
        sendable = stats.added + stats.changed
        self.progress("send", {"total": sendable})
        if sendable and not self.stop.requested:
            if self.records.unrecorded():  # before sending: a run killed midway wrote some
                with self.writes.cut() as cut:
                    self.records.record_writes(self._fields_sent(stats))
                if cut.short:
                    return self._cut_before_sending(s)
            if not stats.first_sync:  # (a first sync's snapshot holds none of the keys)
                self._unsettle_unless_stopped()
        if sendable and not self.stop.requested:
            # a first sync's commits only insert: the adapter may lower its memory meanwhile
            with self.wh.streaming(replacing=not stats.first_sync):
                import asyncio  # only when something is sent

                # a stop cancels the checkpoints' statements that wait for another transaction's
                # lock (the snapshot's, `pend_<sync>`'s): see _unbounded_commit
                with doing("sending"), interrupting(self.stop, self.wh.interrupt_lock_waits):
                    asyncio.run(self._send(s, lock, first_sync=stats.first_sync))
        else:
            self.planner.drop_prior()  # kept for unsettle_sendable
        self.progress("finish", {})
        # the rows parked when the run ends (what `status` shows): its commits parked rows, or
        # delivered parked rows that had changed
        if sendable:
            s.parked = self.planner.parked_count()
        if self.stop.requested:
            s.status = "cancelled"
            s.error = self._stopped_message()
            return
        removed = previous = None
        # (the lock's confirmation, the records in `meta`, the read of `runs`: behind another transaction's lock)
        with doing("committing the rows that left the model"), self.writes.cut() as cut:
            lock.check()
            removed = self._commit_removed_unless_stopped()
            if removed is not None and not self.full_refresh:  # (a refresh's plan counted them)
                s.removed = removed
            # rows sent and not acknowledged were forgotten before sending: the next run sends them
            self.records.record_destination()
            previous = None if s.failed else self.state.last_good_segment_rows(self.cfg.name)  # (for the warnings)
        if removed is None:  # stopped while it waited for the snapshot: the next run removes them
            s.status = "cancelled"
            s.error = self._stopped_message("sending was over and its answers committed; the rows that left the "
                                            "model are removed from the snapshot by the next run")
            return
        if cut.short:  # (the destination's records: the next run writes them; no warnings read)
            s.status = "cancelled"
            s.error = self._stopped_message("sending was over and its answers committed")
            return
        if s.removed or self.planner.forgotten or self.full_refresh:  # parked keys may have left with them
            s.parked = self.planner.parked_count()
        if s.failed:
            s.status = "failed"
            why = f"; e.g. {self.failure}" if self.failure else ""
            s.error = (f"{s.failed} rows could not be delivered (after retries{why}): they stay out of the "
                       "snapshot and are sent again by the next run")
            self.hint = f"`dinsync rejections {self.cfg.name}` lists them with their reasons"
            return
        if s.pending:
            s.warnings.append(f"the outcome of {s.pending} rows had not arrived by the end of the run (e.g. an "
                              "import still being processed): nothing of them is committed yet; the next run "
                              "reads their outcome")
        s.warnings += sync_warnings(th, s, mode=self.cfg.mode, sendable=sendable,
                                    previous_segment_rows=previous,
                                    elapsed_seconds=time.monotonic() - self._started,
                                    withheld_duplicates=s.duplicate_keys - stats.duplicate_keys)
        s.status = "warning" if s.warnings else "success"

    def _prune_rejections(self) -> None:
        """Housekeeping once the run is recorded (its own rows supersede a key's older reasons): the
        sync's rejection rows past `rejections_days` (see StateStore.prune_rejections). A failure
        is a note, never the run's outcome (nor, raised in its `finally`, in place of the run's own
        error): the next run tries again. At most once a day (or every `rejections_days`, if shorter)."""
        keep = dt.timedelta(days=self.opts.rejections_days)
        if not self.records.prune_due(min(keep, dt.timedelta(days=1)).total_seconds()):
            return
        try:
            with self.writes.cut() as cut:
                self.state.prune_rejections(self.cfg.name, keep)
                self.records.pruned()
            if cut.short:
                self.progress("note", {"message": f"stopped by {self.stop.signal_name} while deleting old rejection "
                                                  "rows behind another transaction's lock: the next run deletes them"})
        except Exception as exc:  # (a driver's error the adapter does not translate, too)
            self.progress("note", {"message": self.redact(f"could not delete rejection rows older than "
                                                          f"{self.opts.rejections_days:g} days: {exc}")})

    def _fields_sent(self, stats: PlanStats) -> list[str]:
        """The fields the plan sends: every mapped field (to added rows), else the changed ones."""
        if stats.added:
            return [f.field for f in self.cfg.fields]
        return [field for field, n in self.planner.field_change_counts().items() if n]

    def _earlier_outcomes_unless_stopped(self, s: RunSummary, lock: LockKeeper) -> bool:
        """`_read_earlier_outcomes`, whose writes (to `pend_<sync>`, the snapshot) a stop cancels
        when they wait for another transaction's lock: a run stopped there waited for the
        lock_timeout. False when cut short (each of its transactions is whole: what was not
        committed stays pending, read by the next run); an outcome's own error is raised, once its
        outcomes are committed."""
        read, error = self.writes.run(lambda: self._read_earlier_outcomes(s, lock))
        if error is not None:
            raise type(error)(self.redact(error.message), error.hint)
        return read

    def _read_earlier_outcomes(self, s: RunSummary, lock: LockKeeper) -> DinsyncError | None:
        """Records an earlier run sent whose outcome had not arrived (stashed under their tokens):
        read the outcomes the platform has now, before planning (an acknowledged record is then
        not sent again). Outcomes older than `pending_days` are given up: those rows are sent again.
        An outcome that must fail the run (`Delivered.error`) fails it once the outcomes are
        committed, before anything is planned or sent: returned, for the caller to raise."""
        tokens = self.planner.pending_tokens()
        if not tokens:
            return None
        expired = self.planner.expire_pending(dt.timedelta(days=self.opts.pending_days))
        if expired:
            self.progress("note", {"message": f"gave up waiting for the outcome of {expired} rows sent more than "
                                              f"{self.opts.pending_days:g} days ago: they are sent again"})
            tokens = self.planner.pending_tokens()
            if not tokens:
                return None
        import asyncio

        async def read():
            # token by token: a key sent again since is pending under its newer token only, and an
            # older token's outcome must not settle it (an import of the old values that succeeded
            # says nothing of the newer send, which may still fail)
            options = transport_options(self.dest_cfg)
            options.resolve_wait = self.opts.outcome_timeout_seconds
            options.resolve_stop = lambda: self.stop.requested
            async with hooks.opened(self.destination, self.destination.make_transport(options)) as transport:
                try:  # (stopped: nothing is read, and the run, which then plans nothing, is cancelled)
                    await within_grace(hooks.limited(self.destination, "begin_run",
                                                     self.destination.begin_run(transport, self.spec)),
                                       self.stop, self.opts.grace_seconds)
                except SendingStopped:
                    return []
                resolve = hooks.transport_hook(transport, "resolve")
                return [(token, await hooks.limited(self.destination, resolve, transport.resolve([token]),
                                                    extra=options.resolve_wait)) for token in tokens]

        ok: list[str] = []
        rejected: list[str] = []
        forget: list[str] = []
        problems = []
        error = None
        for token, outcomes in asyncio.run(read()):
            error = outcomes.error or error  # the transport's latest says all it saw
            current = self.planner.pending_keys(token)
            mine = [r for r in outcomes.problems if r.key in current]
            refused = {r.key for r in mine}  # said both acknowledged and refused: not acknowledged
            ok.extend(k for k in dict.fromkeys(outcomes.ok) if k in current and k not in refused)
            rejected.extend(r.key for r in mine if r.status == "rejected")
            forget.extend(r.key for r in mine if r.status != "rejected")
            problems.extend(mine)
        lock.check()
        rows = [(r.key, r.field, r.status, self.redact(r.reason) or r.status) for r in problems]
        if rows:  # the reasons before the parking (see Checkpointer.commit)
            self.state.add_rejections(s.run_id, self.cfg.name, rows)
        n_ok, n_parked = self.planner.resolve_pending(ok=ok, rejected=rejected, forget=forget)
        s.acknowledged += n_ok  # this run learnt of them: they count with its own acknowledgements
        s.rejected += n_parked
        waiting = sum(self.planner.pending_tokens().values())
        self.progress("note", {"message": f"outcomes of earlier runs: {n_ok} rows acknowledged, {n_parked} rejected, "
                                          f"{len(forget)} to send again; {waiting} rows still awaited"})
        return error  # (the run's error, not a stop's: the caller raises it)

    def _unless_the_hosts_interruption(self, loop, context: dict) -> None:
        """The loop's exception handler: a host's exception raised in one of its callbacks (the
        alarm landing as a timer fires) stopped the run already (stop.stop_on_host_exceptions); it
        is named in the run's error and raised again by the API, not logged as a crash of asyncio."""
        if self.stop.interruption is not None and context.get("exception") is self.stop.interruption:
            return
        loop.default_exception_handler(context)

    def _commit_removed_unless_stopped(self) -> int | None:
        """The planner's commit_removed (and a full refresh's cleanup), which a stop cancels as it
        does the unsettle: a run stopped while that write waited for another transaction's lock on
        the snapshot waited for the lock timeout, then was recorded `failed`. None when cut short
        (its transaction changed nothing: the next run plans those keys removed again)."""
        def commit() -> int:
            removed = self.planner.commit_removed()
            if self.full_refresh:
                self.planner.commit_full_refresh_cleanup()
            return removed

        return self.writes.run(commit, whole=True)[1]

    def _unsettle_unless_stopped(self) -> None:
        """The planner's unsettle_sendable, which a stop cancels as it does the plan: its write waits
        for any other transaction's lock on the snapshot, and a run stopped there waited for the
        lock timeout, then was recorded `failed` with it. Cut short, it changed nothing (one
        transaction) and the run sends nothing: it ends `cancelled`."""
        self.writes.run(self.planner.unsettle_sendable, whole=True)

    async def _send(self, s: RunSummary, lock: LockKeeper, first_sync: bool = False) -> None:
        # Imported here: a run with nothing to send never loads polars or aiohttp.
        from .commits import Checkpointer
        from .pipeline import Pipeline

        import asyncio

        self.stop.rearm()  # polars' import put its own SIGINT handler in front of ours
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(self._unless_the_hosts_interruption)
        from ..sender.pacefile import unshared_reason

        unshared = unshared_reason()
        if unshared:
            self.progress("note", {"message": unshared})

        commits = Checkpointer(self.planner, self.state, lock, s.run_id, self.cfg.name,
                               rows=self.opts.checkpoint_rows, seconds=self.opts.checkpoint_seconds,
                               progress=self.progress,
                               # a first sync's commits only insert: in whole blocks where that counts
                               block_rows=self.wh.capabilities.insert_block_rows if first_sync else None)
        # a request waiting for its rate slot when a signal comes (or the lock is lost, or a commit
        # failed) is not sent: with a platform's pace, the queue's requests left over seconds after it
        failed = commits.failed
        stopping = lambda: self.stop.requested or lock.lost.is_set() or failed.is_set()  # noqa: E731
        transport = self.destination.make_transport(transport_options(self.dest_cfg, stop=stopping))
        async with hooks.opened(self.destination, transport):
            try:
                # (also after _check_first: a destination may keep what its check learns on the transport)
                await within_grace(self._preflight(transport), self.stop, self.opts.grace_seconds)
            except BaseException as exc:  # the run's log counts the check's requests too (an outage, say)
                stats = getattr(transport, "transport_stats", TransportStats)()
                s.requests += stats.requests
                s.throttled += stats.throttled
                if isinstance(exc, SendingStopped):  # stopped while its requests were retried: nothing
                    return  # was sent, and the run ends cancelled (see _run), not failed
                raise
            # After the pre-flight check: the kinds it learned (e.g. Attio's attribute types) map the values.
            mapping = self.mapping_plan()
            pipeline = Pipeline(planner=self.planner, destination=self.destination, service=self.service,
                                spec=self.spec, mapping=mapping, transport=transport, checkpointer=commits,
                                summary=s, options=self.opts, stop=self.stop, lock=lock, progress=self.progress,
                                redact=self.redact, concurrency=self.dest_cfg.concurrency,
                                rate_overrides=self.dest_cfg.rate_limits, limits_enabled=self.dest_cfg.limits_enabled)
            commits.counts, commits.counts_seconds = pipeline.counts_so_far, self.wh.capabilities.progress_seconds
            before = self.wh.lock_waits_cancelled
            try:
                await pipeline.run()
            except Exception as exc:
                if not (self.writes.cut_short(before) and commits.failed.is_set()):
                    raise  # (a commit failing on its own, out of memory say, fails the run: stopped or not)
                # a commit cut short by the stop (waiting for another transaction's lock): the run is
                # cancelled, and its rows acknowledged since the last checkpoint are sent again by the
                # next run (unsettled before sending)
                self.uncommitted = self.redact(exc.message if isinstance(exc, DinsyncError) else describe_error(exc))
            finally:
                self.failure = pipeline.failure
                commits.counts = None  # a method of the pipeline, which holds the checkpointer: no cycle left
        if pipeline.fatal is not None:
            raise pipeline.fatal
        if lock.lost.is_set():
            raise LockLostError(f"sync {self.cfg.name!r}: another run took the lock over; this run stopped")

    def mapping_plan(self):
        """How this sync's plan rows are mapped (`pipeline.MappingPlan`): the key, each field with
        its kind (declared, the service's, or learned by the pre-flight check), the region."""
        from ..mapping import FieldMapping, KeyMapping
        from .pipeline import MappingPlan

        return MappingPlan(
            key=KeyMapping(field=self.cfg.match_field, kind=self.key_spec.kind,
                           max_length=self.key_spec.max_length, planned=True),
            fields=[FieldMapping(index=i, field=f.field, kind=self.spec.kinds[f.field])
                    for i, f in enumerate(self.cfg.fields)],
            region=self.destination.default_region(),
            max_row_bytes=self.service.max_row_bytes,
        )

    def learn_kinds(self, options: TransportOptions | None = None) -> str | None:
        """Before `plan` maps its samples: the kinds of the fields no `type:` declares, as the run's
        pre-flight check learns them from the platform's schema (a destination that `learns_kinds`;
        read only; `options`: the transport's, default the run's). A note when the check failed:
        the samples are then mapped without them."""
        if not self.destination.learns_kinds:  # (also with every kind declared: Attio shapes values by
            return None  # the attribute's type, which the check reads)
        import asyncio

        try:
            asyncio.run(self._check_alone(options or transport_options(self.dest_cfg)))
        except DinsyncError as exc:
            reason = "; ".join(i.message for i in exc.issues) if isinstance(exc, ConfigError) else exc.message
            return self.redact(f"the samples are mapped without the types of the platform's schema: its pre-flight "
                               f"check failed ({reason}); the next sync checks it first")
        return None

    async def _preflight(self, transport) -> None:
        """The destination checks the mapping against the platform's schema before anything is sent."""
        result: Preflight = await hooks.limited(self.destination, "preflight",
                                                self.destination.preflight(transport, self.spec))
        for field, kind in result.kinds.items():
            if self.spec.kinds.get(field, "auto") == "auto":
                self.spec.kinds[field] = kind
        if result.issues:
            raise ConfigError(config_issues(self.project, self.cfg, result, self.redact))

    def _check_first(self) -> None:
        """The pre-flight check on a transport of its own, before the run changes any state (only
        destinations that have one: the default checks nothing)."""
        if type(self.destination).preflight is Destination.preflight:
            return
        import asyncio

        async def check() -> None:
            try:  # (stopped: the run plans nothing and ends cancelled, see _run)
                await within_grace(self._check_alone(transport_options(self.dest_cfg), self.summary), self.stop,
                                   self.opts.grace_seconds)
            except SendingStopped:
                pass

        asyncio.run(check())

    async def _check_alone(self, options: TransportOptions, summary: RunSummary | None = None) -> None:
        """The pre-flight check on a transport of its own (`_check_first`, `learn_kinds`); `summary`
        (a run's) counts its requests, also when it fails or is given up."""
        transport = self.destination.make_transport(options)
        async with hooks.opened(self.destination, transport):
            try:
                await self._preflight(transport)
            finally:
                if summary is not None:
                    stats = getattr(transport, "transport_stats", TransportStats)()
                    summary.requests += stats.requests
                    summary.throttled += stats.throttled


def transport_options(dest_cfg, stop: Callable[[], bool] | None = None) -> TransportOptions:
    """The generic delivery settings of a configured destination (`stop`: see TransportOptions)."""
    return TransportOptions(rate_overrides=dict(dest_cfg.rate_limits), limits_enabled=dest_cfg.limits_enabled,
                            concurrency=dest_cfg.concurrency, timeout=dest_cfg.timeout_seconds, stop=stop)


def config_issues(project, cfg, result: Preflight, redact: Callable[[str | None], str | None]) -> list[ConfigIssue]:
    """Pre-flight findings as configuration issues located in the sync file."""
    issues = []
    for i in result.issues:
        line = cfg.line("match.field") if i.field is None else next(
            (f.line("field") for f in cfg.fields if f.field == i.field), None)
        issues.append(ConfigIssue(redact(i.message), project.relative(cfg.path), line, i.hint))
    return issues


def preflight_sync(project, sync_name: str) -> list[ConfigIssue]:
    """`dinsync validate`: run a sync's pre-flight check against the platform (no warehouse needed)."""
    cfg = project.syncs[sync_name]
    dest_cfg = project.destinations[cfg.destination]
    destination = dest_cfg.make_destination()

    async def check() -> Preflight:
        async with hooks.opened(destination, destination.make_transport(transport_options(dest_cfg))) as transport:
            return await hooks.limited(destination, "preflight", destination.preflight(transport, cfg.spec()))

    redaction.register(*destination.secrets(), partial=True)
    import asyncio

    return config_issues(project, cfg, asyncio.run(check()), redaction.redact)
