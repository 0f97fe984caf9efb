"""Operating a sync around its runs: pause guard, automatic pause and resume, notifications.

States a sync is in, for people: `ok`, `warning`, `failed` (its last run) or `paused`. Channels
hear of a change only (`sync_state.notified_state` holds the last state told):

    ok -> warning: "warning"      ok/warning -> failed: "failed"      failed -> warning: "warning"
    warning/failed -> ok: "recovered"       any -> paused: "paused"      paused -> (resumed): "resumed"

A failed run is followed by the cheap check (`dinsync.ops.health`): when it names a culprit (the
model's SQL or data, a missing column, a removed destination field, rejected credentials), the
sync pauses itself, and channels hear "paused" instead of "failed". An automatic pause is lifted
when the check passes again (`recheck`, from `dinsync serve`, `dinsync validate`, or a `dinsync
sync` of that sync); a pause by hand only by `dinsync resume`. After a resume the state is `ok`.

Nothing here raises for a state table or a channel that fails: the sync's own result stands, the
problem is logged.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from .. import redaction
from ..errors import ConfigError, DestinationAuthError, ExitCode
from ..state import StateStore
from ..state.syncstate import SyncState, SyncStates
from .health import CheckResult, Finding, check_sync
from .notify import Notice, Notifier

STATE_OF_STATUS = {"success": "ok", "warning": "warning", "failed": "failed"}
# `dinsync sync` of an automatically paused sync whose check still fails exits as its cause would:
# something to fix in a file, a model or the platform's schema (3), else a failure (1). A pause by
# hand exits 6.
EXIT_OF_CULPRIT = {"destination": ExitCode.CONFIG_ERROR, "column": ExitCode.CONFIG_ERROR,
                   "model": ExitCode.CONFIG_ERROR}


def event_for(previous: str | None, new: str) -> str | None:
    """The notification a change from `previous` (None: never told, i.e. ok) to `new` deserves.
    Notices name a sync never told anything as `ok` (their `previous_state` is never null)."""
    previous = previous or "ok"
    if new == previous:
        return None
    if new == "ok":
        return "resumed" if previous == "paused" else "recovered"
    return new  # warning | failed | paused


@dataclass
class Refusal:
    """`dinsync sync` of a paused sync: what to say."""

    message: str
    hint: str
    issues: list = field(default_factory=list)  # what the check found, located (ConfigIssues)
    exit_code: int = ExitCode.PAUSED


class Operator:
    """One project's operating state through an open warehouse. `check` is injectable (tests)."""

    def __init__(self, project: Any, wh: Any, notifier: Notifier, *, log: Callable[[str], None] = lambda t: None,
                 check: Callable[..., CheckResult] = check_sync, migrate: bool = True,
                 on_change: Callable[..., None] | None = None, stop: Any = None):
        self.project = project
        self.wh = wh
        self.notifier = notifier
        self.log = log
        self.on_change = on_change  # (event, sync, **details) for pauses and resumes; else they are logged
        self.check = check
        self.stop = stop  # a StopToken: a stop request abandons a check in flight (nothing is recorded for it)
        store = StateStore(wh, project.state_schema)
        if migrate:
            store.migrate()
        self.states = SyncStates(store)

    # --- before a run ------------------------------------------------------------------
    def guard(self, name: str, *, force: bool = False) -> Refusal | None:
        """None when the sync may run. An automatic pause is checked again first (and lifted when
        the check passes); `force` runs a paused sync anyway (its pause stays)."""
        state = self.states.get(name)
        if not state.paused:
            return None
        why = f"{state.culprit}: {state.reason}" if state.paused_by == "auto" else f"by hand: {state.reason or 'no reason given'}"
        if force:
            self.log(f"sync {name} is paused ({why}); running it because of --force")
            return None
        if not state.auto_paused:
            return Refusal(f"sync {name} is paused ({why}); nothing was sent",
                           f"`dinsync resume {name}` to resume it, or run it once with --force")
        result = self.recheck(name, state)
        if result.ok:
            return None
        now = self.states.get(name) if result.finding is None else state
        if now.hand_paused:  # paused by hand while it was checked
            return Refusal(f"sync {name} is paused (by hand: {now.reason or 'no reason given'}); nothing was sent",
                           f"`dinsync resume {name}` to resume it, or run it once with --force")
        finding = result.finding
        culprit = finding.culprit if finding else state.culprit
        return Refusal(f"sync {name} is paused by itself ({culprit}: {result.describe()}); nothing was sent",
                       (finding.hint + "; " if finding and finding.hint else "")
                       + "it resumes by itself once its checks pass (or run it with --force)",
                       finding.issues if finding else [],
                       EXIT_OF_CULPRIT.get(culprit, ExitCode.RUN_FAILED) if finding else ExitCode.RUN_FAILED)

    # --- after a run -------------------------------------------------------------------
    def after_run(self, name: str, run: dict[str, Any], code: int, error: BaseException | None = None) -> str | None:
        """Record what the run means for the sync: maybe pause it, maybe notify. `error`: what the
        run raised, if anything. Returns the new state when it changed ("paused"...), else None."""
        status = run.get("status")
        if code in (ExitCode.LOCKED, ExitCode.PAUSED) or status not in STATE_OF_STATUS:
            return None  # another run holds the lock, the sync is paused, the run was cancelled
        try:
            # a forced run of a sync paused by hand leaves that pause alone: an automatic pause in its
            # place would be lifted by the next check, running a sync someone paused
            if status == "failed" and self.states.get(name).paused_by != "hand":
                result = self.diagnose(name, error)
                if result.finding is not None:
                    self.pause(name, by="auto", culprit=result.finding.culprit, reason=result.finding.reason,
                               run=run)
                    return "paused"
            return self.transition(name, STATE_OF_STATUS[status], run)
        except Exception as exc:  # the state tables failed: the run's own result stands
            self.log(redaction.redact(f"could not record the state of sync {name}: {type(exc).__name__}: {exc}"))
            return None

    def diagnose(self, name: str, error: BaseException | None) -> CheckResult:
        """Why a run failed, when it is something the sync depends on. Credentials refused during
        the run say so themselves; a configuration error (e.g. the pre-flight check) gets the whole
        check; any other failure only the model's (the destination is not contacted again for a run
        that failed on its data, its lock or undeliverable rows)."""
        if isinstance(error, DestinationAuthError):
            cfg = self.project.syncs[name]
            return CheckResult(Finding("credentials", redaction.redact(
                f"{cfg.destination} refused the credentials: {error.message}"), error.hint))
        return self.check(self.project, name, self.wh, destination=isinstance(error, ConfigError))

    def transition(self, name: str, new: str, run: dict[str, Any] | None = None,
                   state: SyncState | None = None) -> str | None:
        state = state or self.states.get(name)
        if state.paused and new != "paused":
            return None  # a forced run of a paused sync: the pause is what people were told
        event = event_for(state.notified_state, new)
        if event is None:
            return None
        self.notify(Notice(event, name, new, state.notified_state or "ok", self.message(event, name, run), run=run))
        self.states.notified(name, new)
        return new

    @staticmethod
    def message(event: str, name: str, run: dict[str, Any] | None) -> str:
        run = run or {}
        if event == "warning":
            return f"{name} finished with warnings: " + "; ".join(run.get("warnings") or ["(none recorded)"])
        if event == "failed":
            return f"{name} failed: {run.get('error') or 'no error recorded'}"
        return f"{name} is healthy again: run {run.get('run_id')} finished {run.get('status')}"

    # --- pause and resume ----------------------------------------------------------------
    def pause(self, name: str, *, by: str, culprit: str, reason: str, run: dict[str, Any] | None = None) -> SyncState:
        before = self.states.get(name)
        if by == "auto" and before.hand_paused:
            # paused by hand while the run's failure was being diagnosed: that pause stays (an
            # automatic one in its place would be lifted by the next passing check)
            return before
        reason = redaction.redact(reason)
        state = self.states.pause(name, by=by, culprit=culprit, reason=reason, run_id=(run or {}).get("run_id"))
        if before.notified_state != "paused" or before.paused_by != by:
            who = "by hand" if by == "hand" else "by itself"
            self.notify(Notice("paused", name, "paused", before.notified_state or "ok",
                               f"{name} paused {who}: {reason}", run=run,
                               pause={"paused_by": by, "culprit": culprit, "reason": reason}))
            self.states.notified(name, "paused")
        if self.on_change is not None:
            self.on_change("paused", name, culprit=culprit, reason=reason, paused_by=by)
        else:
            self.log(f"sync {name} paused ({'by hand' if by == 'hand' else culprit}): {reason}")
        return state

    def resume(self, name: str, *, detail: str) -> SyncState:
        before = self.states.get(name)
        state = self.states.resume(name, detail)
        self.notify(Notice("resumed", name, "ok", before.notified_state or "paused", f"{name} resumed: {detail}",
                           pause={"paused_by": before.paused_by, "culprit": before.culprit, "reason": before.reason}))
        self.states.notified(name, "ok")
        if self.on_change is not None:
            self.on_change("resumed", name, reason=detail)
        else:
            self.log(f"sync {name} resumed: {detail}")
        return state

    def recheck(self, name: str, state: SyncState | None = None) -> CheckResult:
        """Check an automatically paused sync again; resume it when the check passes. A check
        abandoned for a stop request records nothing."""
        state = state or self.states.get(name)
        result = self.check(self.project, name, self.wh, **({"stop": self.stop} if self.stop is not None else {}))
        if result.abandoned:
            return result
        if result.ok:
            # the check takes a while (the destination's requests: up to 20 s); a pause by hand made
            # meanwhile (`dinsync pause` from another shell) is never lifted by a check, and a sync
            # resumed by hand meanwhile was resumed (and told) already
            now = self.states.get(name)
            if now.hand_paused:
                return CheckResult(inconclusive=f"paused by hand meanwhile: {now.reason or 'no reason given'}")
            if now.auto_paused:
                self.resume(name, detail="its checks pass again")
        else:
            finding = result.finding
            self.states.checked(name, result.describe(), culprit=finding.culprit if finding else None,
                                reason=finding.reason if finding else None)
        return result

    # --- notifications -------------------------------------------------------------------
    def notify(self, notice: Notice) -> None:
        if not self.notifier.wants(notice.event):
            return
        deliveries = self.notifier.send(notice)
        sent = [d.channel for d in deliveries if d.ok]
        if sent:
            self.states.event(notice.sync, "notified", (notice.run or {}).get("run_id"),
                              f"{notice.event} to {', '.join(sent)}")
        for d in deliveries:
            if not d.ok:
                self.states.event(notice.sync, "notify_failed", (notice.run or {}).get("run_id"),
                                  redaction.redact(f"{notice.event} to {d.channel}: {d.error}"))
