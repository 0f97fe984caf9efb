"""Many rows refused, over many runs: parking, the rejections table and the history commands
(the rejectscale audit's findings, scaled down to a few hundred rows)."""
from __future__ import annotations

from dinsync.state.store import StateStore

ROWS = 300


def seed_with_bad_rows(project, rows: int = ROWS) -> set[str]:
    """`rows` customers, every 5th with an address Iterable refuses (no dot in its domain: dinsync
    sends it, Iterable lists it in failedUpdates.invalidEmails). Returns those addresses."""
    project.seed(rows)
    project.sql("update main.customers set email = 'bad' || id || '@nodot' where id % 5 = 0")
    return {e for (e,) in project.sql("select email from main.customers where id % 5 = 0")}


def parked_keys(project) -> set[str]:
    return {k for (k,) in project.sql("select _key from dinsync.snap_iterable_users where _pfp is not null")}


def test_a_row_is_never_parked_without_its_reason_in_rejections(project, monkeypatch):
    """A checkpoint parked the refused rows, then wrote their reasons in a statement of its own:
    a run that died in between (kill -9, the warehouse gone) left rows parked, never sent again,
    that `dinsync rejections` had no word about. The reasons are written first now: at worst a
    refused row is sent once more, and parked again with its reason."""
    bad = seed_with_bad_rows(project)
    original = StateStore.add_rejections

    def fails(self, run_id, sync, rows):
        if any(status == "rejected" for _, _, status, _ in rows):
            raise ConnectionError("the warehouse went away")
        return original(self, run_id, sync, rows)

    monkeypatch.setattr(StateStore, "add_rejections", fails)
    assert project.sync()["runs"][0]["status"] == "failed"
    monkeypatch.setattr(StateStore, "add_rejections", original)
    reasons = {k for (k,) in project.sql("select key from dinsync.rejections where status = 'rejected'")}
    assert parked_keys(project) <= reasons
    run = project.sync()["runs"][0]
    assert parked_keys(project) == bad
    assert {k for (k,) in project.sql("select key from dinsync.rejections where status = 'rejected'")} == bad
    assert run["parked"] == len(bad)
