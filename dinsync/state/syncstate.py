"""Per-sync operating state in the warehouse: paused or not (and why), the last state sent to
notification channels, and an event log (pauses, resumes, notifications).

Tables (layout 4, in the state schema): `sync_state` holds one row per sync (written as INSERT
+ DELETE of the other rows in one transaction, so no warehouse needs an enforced key; the newest
row is read); `events` is append-only. Texts are redacted by the callers before they get here.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, fields
from typing import Any

from ..report import SHORTENED_KEY_MAX, shown_key
from .locks import utcnow
from .store import StateStore, _text  # (NUL as `\x00`: what every warehouse holds)

PAUSED_BY = ("auto", "hand")
# What a pause names as its cause (`culprit`): see dinsync.ops.health.
CULPRITS = ("warehouse", "source", "model", "column", "destination", "credentials", "hand")
EVENTS = ("paused", "resumed", "notified", "notify_failed")


@dataclass
class SyncState:
    sync: str
    paused: bool = False
    paused_by: str | None = None  # auto | hand
    culprit: str | None = None  # one of CULPRITS
    reason: str | None = None  # names the culprit, e.g. "column 'plan' is not a column of model customers"
    paused_at: dt.datetime | None = None
    paused_run_id: str | None = None
    checked_at: dt.datetime | None = None  # last check of a paused sync
    check_error: str | None = None  # what that check found (None: it passed)
    notified_state: str | None = None  # ok | warning | failed | paused: the last state sent to channels
    notified_at: dt.datetime | None = None
    updated_at: dt.datetime | None = None

    @property
    def auto_paused(self) -> bool:
        return self.paused and self.paused_by == "auto"

    @property
    def hand_paused(self) -> bool:
        return self.paused and self.paused_by == "hand"


COLUMNS = [f.name for f in fields(SyncState)]


class SyncStates:
    """Read and write `sync_state` and `events` through a StateStore (migrated by the caller)."""

    def __init__(self, store: StateStore):
        self.store = store
        self.wh = store.wh

    # --- sync_state ------------------------------------------------------------------
    def get(self, sync: str) -> SyncState:
        rows = self.wh.rows(f"SELECT * FROM {self.store.t('sync_state')} WHERE sync = :sync ORDER BY updated_at DESC",
                            {"sync": sync})
        return _state(rows[0]) if rows else SyncState(sync)

    def all(self) -> dict[str, SyncState]:
        rows = self.wh.rows(f"SELECT * FROM {self.store.t('sync_state')} ORDER BY updated_at")
        return {r["sync"]: _state(r) for r in rows}  # the newest row wins (there is one per sync)

    def put(self, state: SyncState) -> SyncState:
        state.updated_at = utcnow()
        values = asdict(state)
        table = self.store.t("sync_state")
        # the new row first, then the others: where the two statements commit on their own (Snowflake),
        # a run killed between them leaves two rows, the newest of which is read, never none (which
        # read as not paused)
        with self.wh.transaction():
            self.wh.execute(f"INSERT INTO {table} ({', '.join(COLUMNS)}) VALUES "
                            f"({', '.join(':' + c for c in COLUMNS)})", values)
            self.wh.execute(f"DELETE FROM {table} WHERE sync = :sync AND (updated_at IS NULL OR updated_at <> :at)",
                            {"sync": state.sync, "at": state.updated_at})
        return state

    def pause(self, sync: str, *, by: str, culprit: str, reason: str, run_id: str | None = None) -> SyncState:
        if by not in PAUSED_BY or culprit not in CULPRITS:
            raise ValueError(f"pause by {by!r} for {culprit!r}")
        state = self.get(sync)
        now = utcnow()
        state.paused, state.paused_by, state.culprit, state.reason = True, by, culprit, reason
        state.paused_at, state.paused_run_id, state.checked_at, state.check_error = now, run_id, now, reason
        self.put(state)
        # `auto: column: ...`; a pause by hand has culprit `hand` too: `hand: ...`, said once
        self.event(sync, "paused", run_id, f"{by}: {reason}" if culprit == by else f"{by}: {culprit}: {reason}")
        return state

    def resume(self, sync: str, detail: str) -> SyncState:
        state = self.get(sync)
        state.paused, state.paused_by, state.culprit, state.reason = False, None, None, None
        state.paused_at, state.paused_run_id, state.check_error = None, None, None
        state.checked_at = utcnow()
        self.put(state)
        self.event(sync, "resumed", None, detail)
        return state

    def checked(self, sync: str, error: str | None, *, culprit: str | None = None,
                reason: str | None = None) -> SyncState:
        """A paused sync was checked again and is still paused (`error`: what the check found;
        `culprit`/`reason`: what now keeps it paused, when the check named it)."""
        state = self.get(sync)
        state.checked_at, state.check_error = utcnow(), error
        if culprit is not None and state.paused_by == "auto":
            state.culprit, state.reason = culprit, reason
        return self.put(state)

    def notified(self, sync: str, notified_state: str) -> SyncState:
        state = self.get(sync)
        state.notified_state, state.notified_at = notified_state, utcnow()
        return self.put(state)

    # --- events ----------------------------------------------------------------------
    def event(self, sync: str, event: str, run_id: str | None, detail: str | None) -> None:
        self.wh.execute(f"INSERT INTO {self.store.t('events')} (event_at, sync, event, run_id, detail) "
                        f"VALUES (:at, :sync, :event, :run, :detail)",
                        {"at": utcnow(), "sync": sync, "event": event, "run": run_id, "detail": _text(detail)})

    def events(self, sync: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        where = "WHERE sync = :sync " if sync else ""
        params: dict[str, Any] = {"limit": int(limit)}
        if sync:
            params["sync"] = sync
        return self.wh.rows(f"SELECT event_at, sync, event, run_id, detail FROM {self.store.t('events')} {where}"
                            f"ORDER BY event_at DESC LIMIT :limit", params)

    # --- history read by the CLI ---------------------------------------------------------
    def rejections(self, sync: str, run_id: str | None = None, limit: int = 100,
                   statuses: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Rejected, not-found and failed rows of a sync (of one run; of these `statuses`), newest
        first, a key longer than SHORTENED_KEY_MAX shown as its start and its length: the table may
        hold keys of 1 MB (whole until 2026-12-05), and sorting 40 of them ran DuckDB's pool out of memory."""
        where = "sync = :sync" + (" AND run_id = :run" if run_id else "")
        params: dict[str, Any] = {"sync": sync, "limit": int(limit)}
        if run_id:
            params["run"] = run_id
        if statuses:
            where += f" AND status IN ({', '.join(f':s{i}' for i in range(len(statuses)))})"
            params.update({f"s{i}": status for i, status in enumerate(statuses)})
        rows = self.wh.rows(f"SELECT run_id, sync, SUBSTR(key, 1, {SHORTENED_KEY_MAX}) AS key_start, "
                            f"LENGTH(key) AS key_length, field, status, reason, rejected_at FROM "
                            f"{self.store.t('rejections')} WHERE {where} ORDER BY rejected_at DESC, key_start "
                            f"LIMIT :limit", params)
        return [{"run_id": r["run_id"], "sync": r["sync"], "key": shown_key(r["key_start"], r["key_length"]),
                 **{c: r[c] for c in ("field", "status", "reason", "rejected_at")}} for r in rows]


def _state(row: dict[str, Any]) -> SyncState:
    data = {c: row.get(c) for c in COLUMNS}
    data["paused"] = bool(data["paused"])
    return SyncState(**data)
