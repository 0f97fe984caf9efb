"""History from the warehouse tables: `status` (one line per sync), `runs NAME`, `rejections NAME`,
in text and JSON."""
from __future__ import annotations

import json

from dinsync.errors import ExitCode
from dinsync.report import RUN_COUNTS


def test_status_runs_and_rejections(project):
    (project.root / "syncs" / "other.yml").write_text(
        (project.root / "syncs" / "iterable_users.yml").read_text() + "enabled: false\nschedule: {every: 1h}\n")
    first = project.sync()["runs"][0]
    project.sql("insert into main.customers values (101, 'not an email', 'u-101', 'x', 'free', 1)")
    second = project.sync()["runs"][0]
    assert second["status"] == "warning" and second["rejected"] == 1

    data = json.loads(project.cli("status").stdout)
    users, other = data["syncs"]
    # the row rejected for its content is parked now (the run counts them after its commits)
    assert (users["sync"], users["state"], users["enabled"], users["parked"], users["paused"]) == \
        ("iterable_users", "warning", True, 1, False)
    assert (first["parked"], second["parked"]) == (0, 1)
    assert users["last_run"]["run_id"] == second["run_id"] and set(RUN_COUNTS) <= set(users["last_run"])
    assert (other["sync"], other["state"], other["enabled"], other["schedule"], other["last_run"]) == \
        ("other", "never run", False, "every 1h", None)
    assert [r["run_id"] for r in data["runs"]] == [second["run_id"], first["run_id"]]
    assert [r["run_id"] for r in json.loads(project.cli("status", "--limit", "1").stdout)["runs"]] == \
        [second["run_id"]]

    text = project.cli("status", json_output=False).stdout
    rows = [line for line in text.splitlines() if line.split()[:1] in (["iterable_users"], ["other"])]
    assert len(rows) == 2, text
    assert "warning" in rows[0] and "were rejected or not found" in rows[0]
    assert "never run" in rows[1] and "(disabled)" in rows[1]

    # runs NAME: newest first, --limit
    runs = json.loads(project.cli("runs", "iterable_users").stdout)["runs"]
    assert [r["run_id"] for r in runs] == [second["run_id"], first["run_id"]]
    assert list(runs[0]) == list(second)
    assert [r["run_id"] for r in json.loads(project.cli("runs", "iterable_users", "--limit", "1").stdout)["runs"]] == \
        [second["run_id"]]
    assert second["run_id"] in project.cli("runs", "iterable_users", json_output=False).stdout
    assert json.loads(project.cli("runs", "other").stdout)["runs"] == []

    # rejections NAME [--run]
    def listed(*args: str) -> list:
        """The rows `dinsync rejections` lists, its whole output in the message when it lists none
        (seen once in CI: `--run <first run>` printed something else, KeyError: 'rejections')."""
        result = project.cli("rejections", *args)
        data = json.loads(result.stdout)
        assert result.exit_code == 0 and "rejections" in data, (args, result.exit_code, result.output)
        return data["rejections"]

    [rejected] = listed("iterable_users")
    assert (rejected["run_id"], rejected["key"], rejected["status"]) == (second["run_id"], "not an email", "rejected")
    assert "not a valid email" in rejected["reason"] and rejected["rejected_at"].endswith("Z")
    assert listed("iterable_users", "--run", first["run_id"]) == [], first
    assert listed("iterable_users", "--run", second["run_id"]) == [rejected]
    text = project.cli("rejections", "iterable_users", json_output=False).stdout
    assert "not an email" in text and "rejected" in text
    assert "no rejected rows" in project.cli("rejections", "other", json_output=False).stdout
    # a run id that is not one of this sync's runs is said to be so, not "no rejected rows"
    for run_id in ("nope", second["run_id"]):
        wrong = project.cli("rejections", "other", "--run", run_id, json_output=False)
        assert wrong.exit_code == ExitCode.CONFIG_ERROR, wrong.output
        assert f"sync other has no run {run_id!r}" in wrong.output and "dinsync runs other" in wrong.output
        assert "no rejected rows" not in wrong.output

    # one sync, named
    for args in (("runs", "iterable_*"), ("rejections", "nope")):
        result = project.cli(*args)
        assert result.exit_code == ExitCode.CONFIG_ERROR, result.output


def test_runs_and_rejections_of_the_only_sync_need_no_name(project):
    """`dinsync runs` and `dinsync rejections` required a sync's name even in a project of one
    sync (click's "Missing argument 'SYNC'"). Left out, they show the only sync's; in a project of
    several, they say which names there are (a usage error, exit 2)."""
    project.sql("insert into main.customers values (101, 'not an email', 'u-101', 'x', 'free', 1)")
    run = project.sync()["runs"][0]
    assert [r["run_id"] for r in json.loads(project.cli("runs").stdout)["runs"]] == [run["run_id"]]
    [rejected] = json.loads(project.cli("rejections").stdout)["rejections"]
    assert (rejected["run_id"], rejected["key"]) == (run["run_id"], "not an email")
    (project.root / "syncs" / "other.yml").write_text((project.root / "syncs" / "iterable_users.yml").read_text())
    for command in ("runs", "rejections"):
        result = project.cli(command, json_output=False)
        assert result.exit_code == ExitCode.USAGE, result.output
        assert "name a sync: the project has 2" in result.output and "syncs: iterable_users, other" in result.output


def test_runs_and_rejections_say_when_their_limit_left_rows_out(project):
    """`dinsync rejections` shows the newest 100 rows and `runs` the newest 20, and said nothing of
    the others: after 600 runs of 1,000 duplicated keys (600,000 rows) the table looked like the
    whole story. A line under the table says the limit left rows out and how to see more; none when
    every row is shown. --json is unchanged (the caller chose the limit)."""
    project.sql("insert into main.customers values (101, 'not an email', 'u-101', 'x', 'free', 1), "
                "(102, 'nor this', 'u-102', 'y', 'free', 1)")
    project.sync()
    project.sql("update main.customers set plan = 'pro'")
    project.sync()  # 2 runs, each refusing the 2 rows (changed, so sent again)
    total = len(json.loads(project.cli("rejections").stdout)["rejections"])
    assert total == 4, total
    for command, limit, more, rows in (("runs", 1, True, "run"), ("runs", 2, False, "runs"),
                                       ("rejections", 3, True, "rows"), ("rejections", 4, False, "rows")):
        text = " ".join(project.cli(command, "--limit", str(limit), json_output=False).stdout.split())
        assert (f"shown: the newest {limit} {rows} (--limit N shows more)" in text) is more, (command, limit, text)
    assert len(json.loads(project.cli("rejections", "--limit", "1").stdout)["rejections"]) == 1
    assert len(json.loads(project.cli("runs", "--limit", "1").stdout)["runs"]) == 1


def test_parked_count_follows_rows_that_leave_or_change(project):
    """A run's `parked` is counted when it ends: a parked row that leaves the segment (forgotten by
    the run's removals) or is fixed and delivered is no longer counted; a no-op keeps the count."""
    project.sync()
    project.sql("insert into main.customers values (101, 'not an email', 'u-101', 'x', 'free', 1)")
    project.sql("insert into main.customers values (102, 'neither an email', 'u-102', 'x', 'free', 1)")
    assert project.sync()["runs"][0]["parked"] == 2
    assert project.sync()["runs"][0]["parked"] == 2  # nothing to send
    project.sql("delete from main.customers where id = 101")
    left = project.sync()["runs"][0]
    assert (left["sent"], left["parked"]) == (0, 1), left
    project.sql("update main.customers set email = 'fixed@example.com' where id = 102")
    fixed = project.sync()["runs"][0]
    assert (fixed["acknowledged"], fixed["parked"]) == (1, 0), fixed
    assert json.loads(project.cli("status").stdout)["syncs"][0]["parked"] == 0


def test_rejection_rows_are_kept_for_30_days_and_a_parked_keys_newest_reason_for_good(project):
    """A sync run every 15 minutes writes its rows without a key, its duplicated keys (and in update
    mode its unknown people) into `rejections` again each run: kept whole, the table grew by those
    rows each run, 35,000 runs a year. Rows older than `rejections_days` (30) are deleted at the end
    of the sync's next run, but for a parked key's newest reason."""
    project.seed(100)  # (2 rows of a duplicated key: under the 5% that blocks the model)
    project.sql("insert into main.customers values (1001, null, 'u-101', 'x', 'free', 1), "
                "(1002, 'dup@example.com', 'u-102', 'x', 'free', 1), (1003, 'dup@example.com', 'u-103', 'y', 'free', 1), "
                "(1004, 'bad-0', 'u-104', 'x', 'free', 1), (1005, 'bad-kept', 'u-105', 'x', 'free', 1)")
    for i in range(1, 4):  # the rejected row changes each run: rejected again each time
        run = project.sync()
        assert run["exit_code"] == 4, (i, run["runs"][0]["error"])
        project.sql("update main.customers set first_name = ? where id = 1004", f"v{i}")
    rows = lambda: project.sql("select key, status from dinsync.rejections order by all")  # noqa: E731
    assert len(rows()) == 3 * 3 + 1  # runs x (skipped, duplicate, bad-0) + bad-kept once (parked)
    project.sql("update dinsync.rejections set rejected_at = rejected_at - interval 31 day")
    # ... and the last deletion a day ago (they are deleted at most once a day: see the next test)
    project.sql("update dinsync.meta set value = cast(cast(value as double) - 86400 as varchar) "
                "where key = 'rejections_pruned:iterable_users'")
    last = project.sync()
    assert last["exit_code"] == 4 and last["runs"][0]["parked"] == 2
    # this run's rows (bad-0 changed once more), and bad-kept's only reason, however old
    assert rows() == [("bad-0", "rejected"), ("bad-kept", "rejected"),
                      ("dup@example.com", "duplicate"), (None, "skipped")], rows()
    assert {r["key"] for r in json.loads(project.cli("rejections").stdout)["rejections"]} == \
        {None, "bad-0", "bad-kept", "dup@example.com"}


def test_old_rejection_rows_are_deleted_once_a_day_not_by_every_run(project, monkeypatch):
    """Deleting them is two DML statements: milliseconds here, but on BigQuery seconds each and a
    share of the table's daily DML quota, for a sync run every 15 minutes. A failed deletion, a
    clock set back, or a day gone by: the next run deletes them."""
    from dinsync.state.store import StateStore

    calls = []
    real = StateStore.prune_rejections

    def counted(self, sync, older_than):
        calls.append(sync)
        if len(calls) == 3:
            raise RuntimeError("permission denied for table rejections")
        return real(self, sync, older_than)

    monkeypatch.setattr(StateStore, "prune_rejections", counted)
    project.seed(20)
    shift = lambda seconds: project.sql(  # noqa: E731
        "update dinsync.meta set value = cast(cast(value as double) + ? as varchar) "
        "where key = 'rejections_pruned:iterable_users'", seconds)
    for _ in range(3):
        assert project.sync()["exit_code"] == 0
    assert calls == ["iterable_users"]
    shift(-86400)  # a day later: deleted again
    assert project.sync()["exit_code"] == 0 and calls == ["iterable_users"] * 2
    shift(-86400)  # a day later, the deletion fails: the next run tries again
    assert project.sync()["exit_code"] == 0 and len(calls) == 3
    assert project.sync()["exit_code"] == 0 and len(calls) == 4
    shift(3600)  # the clock set back an hour: due at once
    assert project.sync()["exit_code"] == 0 and len(calls) == 5
    assert project.sync()["exit_code"] == 0 and len(calls) == 5


def test_a_failed_deletion_of_old_rejection_rows_is_a_note_not_the_runs_outcome(project, monkeypatch):
    from dinsync.state.store import StateStore

    def refuse(self, sync, older_than):
        raise RuntimeError("permission denied for table rejections")

    monkeypatch.setattr(StateStore, "prune_rejections", refuse)
    data = project.sync()
    assert data["exit_code"] == 0 and data["runs"][0]["status"] == "success"
    assert "could not delete rejection rows older than 30 days: permission denied" in project.last.stderr
