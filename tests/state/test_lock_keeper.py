"""LockKeeper: when a commit asks the warehouse whether the lock is still this run's."""
from __future__ import annotations

import time

import pytest

from dinsync.engine.lock import LockKeeper, LockLostError
from dinsync.state import StateStore
from dinsync.warehouses import connect


class CountingState:
    """The store's lock calls, counted; `ours` says what a refresh finds."""

    def __init__(self) -> None:
        self.refreshes = 0
        self.ours = True

    def acquire_lock(self, sync, run_id, ttl):
        pass

    def refresh_lock(self, sync, run_id, ttl):
        self.refreshes += 1
        return self.ours

    def release_lock(self, sync, run_id):
        pass


def test_a_recent_confirmation_is_trusted_an_older_one_is_checked(monkeypatch):
    """(On a clock the test moves: a pause of the test's thread of 0.2 s between two checks, under
    load, made the second one ask the warehouse too.)"""
    from types import SimpleNamespace

    from dinsync.engine import lock

    now = [1000.0]
    monkeypatch.setattr(lock, "time", SimpleNamespace(monotonic=lambda: now[0]))
    state = CountingState()
    keeper = LockKeeper(state, "s", "run-1", ttl_seconds=2.0, heartbeat_seconds=3600)
    assert keeper.trust_seconds == pytest.approx(0.2)  # ttl / 10
    keeper.check()  # never confirmed: asks
    assert state.refreshes == 1
    now[0] += 0.1
    keeper.check()
    keeper.check()  # confirmed a moment ago: no question to the warehouse
    assert state.refreshes == 1
    now[0] += 0.15
    keeper.check()
    assert state.refreshes == 2
    state.ours = False  # another run took the lock over after an expiry
    now[0] += 0.25
    with pytest.raises(LockLostError):
        keeper.check()
    assert keeper.lost.is_set()
    with pytest.raises(LockLostError):  # lost stays lost, however recent the last confirmation
        keeper.check()


def test_the_window_never_exceeds_five_seconds():
    keeper = LockKeeper(CountingState(), "s", "run-1", ttl_seconds=900, heartbeat_seconds=60)
    assert keeper.trust_seconds == 5.0


def test_a_taken_over_lock_stops_commits_once_the_window_has_passed(tmp_path):
    """Against the real store: the lock expires, another run takes it over, and this run's next
    check (past its trust window) finds out."""
    wh = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    try:
        store = StateStore(wh, "dinsync")
        store.migrate()
        keeper = LockKeeper(store, "people", "run-1", ttl_seconds=0.5, heartbeat_seconds=3600)
        store.acquire_lock("people", "run-1", 0.5)  # (no heartbeat thread: it would keep the lock alive)
        assert keeper.refresh()  # a confirmation: the next check does not ask again
        keeper.check()
        time.sleep(0.6)  # expired (a heartbeat that could not reach the warehouse, say)
        store.acquire_lock("people", "run-2", 900)  # taken over
        with pytest.raises(LockLostError):
            keeper.check()
        keeper.release()  # lost: leaves run-2's lock alone
        assert [h["run_id"] for h in store.lock_holders("people")] == ["run-2"]
    finally:
        wh.close()
