"""Many rows refused, over many runs: parking, the rejections table and the history commands
(the rejectscale audit's findings, scaled down to a few hundred rows)."""
from __future__ import annotations

import time

import orjson

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


def test_rejections_lists_the_parked_rows_behind_the_duplicates_every_run_writes_again(project):
    """Every run lists again the keys it withheld as duplicated (up to 1,000) and its keyless rows;
    the rows parked for their content are listed once, by the run that refused them. After a few
    runs `dinsync rejections` showed only duplicates: the reasons of 40,000 parked rows sat behind
    1,000 rows a run (100,000 after 100 hourly runs). `--status` picks the statuses to list."""
    bad = seed_with_bad_rows(project)
    project.sql("update main.customers set email = 'dup' || (id % 3) || '@example.com' where id % 50 = 1")
    project.sql("update main.customers set email = null where id % 5 = 2 and id < 20")
    project.write(max_rejected_pct=100)
    for _ in range(4):
        project.sync()
    newest = project.cli("rejections", "--limit", "12")  # the 3 duplicated keys and the keyless rows of 3 runs
    assert {r["status"] for r in json_rows(newest)} == {"duplicate", "skipped"}  # (why the option)
    shown = project.cli("rejections", "--status", "rejected", "--limit", "1000")
    assert shown.exit_code == 0, shown.output
    rows = json_rows(shown)
    assert {r["key"] for r in rows} == bad and {r["status"] for r in rows} == {"rejected"}
    both = json_rows(project.cli("rejections", "--status", "rejected", "--status", "skipped", "--limit", "1000"))
    assert {r["status"] for r in both} == {"rejected", "skipped"} and len(both) == len(bad) + 4  # (a keyless row a run)
    text = project.cli("rejections", "--status", "rejected", "--limit", "3", json_output=False)
    assert text.exit_code == 0 and text.stdout.count("@nodot") == 3
    wrong = project.cli("rejections", "--status", "parked")
    assert wrong.exit_code == 2 and "unknown status 'parked'" in wrong.output and "not_found" in wrong.output


def runs_past_the_retention(project) -> dict:
    """Two runs, each over a second after the one before (DINSYNC_REJECTIONS_DAYS 0.00001: each
    prunes what the run before wrote); the last one's run object."""
    for _ in range(2):
        time.sleep(1)
        run = project.sync()["runs"][0]
    return run


def json_rows(result) -> list[dict]:
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)["rejections"]


def test_a_parked_row_keeps_its_reason_after_a_spell_as_a_duplicated_key(project, monkeypatch):
    """Pruning kept a key's newest row when it was `rejected`, and deleted an older one as soon as
    any newer row of the key came: a parked key duplicated in the model for a while (a fan-out
    join for a day) had its `duplicate` rows supersede its reason, then those were pruned in turn,
    and once on one row again it stayed parked with no reason left in `dinsync rejections`."""
    monkeypatch.setenv("DINSYNC_REJECTIONS_DAYS", "0.00001")  # (0.864 s)
    project.sql("update main.customers set email = 'bad7@nodot' where id = 7")
    assert project.sync()["runs"][0]["parked"] == 1
    project.sql("insert into main.customers select 77, email, user_id, 'twin', plan, ltv from main.customers where id = 7")
    runs_past_the_retention(project)
    project.sql("delete from main.customers where id = 77")
    run = runs_past_the_retention(project)
    assert run["parked"] == 1 and parked_keys(project) == {"bad7@nodot"}
    shown = json_rows(project.cli("rejections", "--status", "rejected"))
    assert [(r["key"], r["reason"]) for r in shown] == [("bad7@nodot", "Iterable: invalid email address")]


def test_the_reason_of_a_refused_key_that_left_the_model_is_pruned(project, monkeypatch):
    """An address Iterable refuses is fixed in the model by replacing it: the refused key leaves
    the model (and the snapshot), and its `rejected` row, the key's newest, was kept forever: every
    address ever refused stayed in the table (2,000 a day for 1% of a 200k audience fixed daily),
    and `dinsync rejections --status rejected` listed them as if still parked. A reason is kept past
    the retention only while its key is parked."""
    monkeypatch.setenv("DINSYNC_REJECTIONS_DAYS", "0.00001")  # (0.864 s)
    project.sql("update main.customers set email = 'bad' || id || '@nodot' where id in (7, 8)")
    assert project.sync()["runs"][0]["parked"] == 2
    project.sql("update main.customers set email = 'fixed7@example.com' where id = 7")
    run = runs_past_the_retention(project)
    assert run["parked"] == 1 and parked_keys(project) == {"bad8@nodot"}
    assert [k for (k,) in project.sql("select key from dinsync.rejections")] == ["bad8@nodot"]
