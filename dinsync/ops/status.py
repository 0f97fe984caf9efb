"""What `dinsync status` shows: one entry per sync, from the run log and `sync_state`.

    {"sync": "iterable_users", "enabled": true, "schedule": "cron '0 6 * * *'",
     "state": "paused", "paused": true, "paused_by": "auto", "culprit": "column",
     "reason": "column 'plan' (mapped to 'plan') is not a column of model customers",
     "paused_at": "...Z", "checked_at": "...Z", "check_error": "...", "notified_state": "paused",
     "parked": 3, "last_run": {run object} | null}

`state` is `paused` while the sync is paused, else the status of its last run (`success`,
`warning`, `failed`, `cancelled`, `abandoned`, `running`), or `never run`.
"""
from __future__ import annotations

from typing import Any, Iterable

from ..report import run_from_log, utc_iso
from ..state import StateStore
from ..state.syncstate import SyncState, SyncStates


def settle_dead_runs(store: StateStore, last: dict[str, dict], names: Iterable[str]) -> bool:
    """Clear the locks of the `names` whose last run (`last`: sync -> run log row) is `running` and
    whose holder died, so that a run killed (kill -9, OOM) is `abandoned` now, not at the next run.
    True when some last run was `running` (the caller reads the run log again)."""
    running = [n for n in names if (last.get(n) or {}).get("status") == "running"]
    for name in running:
        store.clear_stale_lock(name)
    return bool(running)


def sync_statuses(project: Any, store: StateStore, names: Iterable[str]) -> list[dict[str, Any]]:
    names = list(names)
    last = {r["sync"]: r for r in store.last_runs(limit=1)}
    if settle_dead_runs(store, last, names):
        last = {r["sync"]: r for r in store.last_runs(limit=1)}
    states = SyncStates(store).all()
    entries = [status_entry(project.syncs.get(n), n, states.get(n) or SyncState(n), last.get(n)) for n in names]
    for entry in entries:  # a run killed before its first checkpoint recorded no count: ask the snapshot
        if entry["last_run"] is not None and last[entry["sync"]].get("parked") is None:
            entry["parked"] = store.parked_in_snapshot(entry["sync"])
    return entries


def status_entry(cfg: Any, name: str, state: SyncState, last_row: dict | None) -> dict[str, Any]:
    last_run = run_from_log(last_row) if last_row else None
    schedule = getattr(cfg, "schedule", None)
    return {
        "sync": name,
        "enabled": bool(getattr(cfg, "enabled", True)),
        "schedule": schedule.describe() if schedule is not None else None,
        "state": "paused" if state.paused else (last_run["status"] if last_run else "never run"),
        "paused": state.paused,
        "paused_by": state.paused_by,
        "culprit": state.culprit,
        "reason": state.reason,
        "paused_at": utc_iso(state.paused_at),
        "checked_at": utc_iso(state.checked_at),
        "check_error": state.check_error,
        "notified_state": state.notified_state,
        "parked": last_run["parked"] if last_run else 0,
        "last_run": last_run,
    }
