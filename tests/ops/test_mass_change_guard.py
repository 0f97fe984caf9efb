"""`thresholds.max_changed_pct`: a plan that would change more of the rows delivered before than
this share fails before sending (a broken transform overwriting the audience), `plan` says so, and
`sync --force` sends it once."""
from __future__ import annotations

import json

import dinsync
from dinsync.config.models import Thresholds
from dinsync.diff.spec import PlanStats
from dinsync.engine.thresholds import mass_change
from dinsync.errors import ExitCode
from tests.ops.conftest import set_sync


def stats(changed: int, unchanged: int, *, added: int = 0, removed: int = 0, first_sync: bool = False) -> PlanStats:
    return PlanStats(segment_rows=changed + unchanged + added, null_keys=0, duplicate_keys=0, duplicate_rows=0,
                     added=added, changed=changed, removed=removed, unchanged=unchanged, full_refresh=False,
                     first_sync=first_sync)


def test_the_share_is_of_the_rows_delivered_before_and_a_first_sync_is_never_blocked():
    th = Thresholds(max_changed_pct=50)
    assert mass_change(th, stats(11, 9), "s") == \
        "11 of the 20 rows delivered before would change (55.0%), over the 50% max_changed_pct of sync s"
    assert mass_change(th, stats(10, 10), "s") is None  # at the limit: within it
    assert mass_change(th, stats(1, 9, added=1000), "s") is None  # newcomers are not changes
    assert mass_change(th, stats(0, 0, added=1000, first_sync=True), "s") is None
    assert mass_change(Thresholds(), stats(20, 0), "s") is None  # off unless set
    assert mass_change(Thresholds(max_changed_pct=0), stats(1, 999), "s").startswith("1 of the 1,000 rows")


def test_rows_that_leave_the_model_count_against_max_removed_pct():
    th = Thresholds(max_removed_pct=30)
    assert mass_change(th, stats(0, 0, removed=20), "s") == \
        "20 of the 20 rows delivered before would leave the model (100.0%), over the 30% max_removed_pct of sync s"
    # a key rewritten: every key leaves, as many come
    assert mass_change(th, stats(0, 0, added=20, removed=20), "s").startswith("20 of the 20 rows")
    assert mass_change(th, stats(0, 7, removed=3), "s") is None
    both = Thresholds(max_changed_pct=30, max_removed_pct=30)
    assert mass_change(both, stats(4, 2, removed=4), "s") == (
        "4 of the 10 rows delivered before would change (40.0%), over the 30% max_changed_pct of sync s; "
        "4 of the 10 rows delivered before would leave the model (40.0%), over the 30% max_removed_pct of sync s")
    assert mass_change(Thresholds(max_changed_pct=30), stats(0, 0, removed=20), "s") is None  # each its own


def sent_users(project) -> int:
    return sum(len(json.loads(body)["users"]) for body in project.requests.bodies("/api/users/bulkUpdate"))


def test_a_broken_transform_is_stopped_before_sending_and_force_sends_it(project):
    set_sync(project, thresholds="  max_changed_pct: 50\n")
    assert project.sync()["exit_code"] == ExitCode.OK
    first = sent_users(project)
    assert first == 20
    before = project.sql("select _key, _fp from dinsync.snap_iterable_users order by _key")

    project.sql("update main.customers set plan = NULL")  # a join that lost its matches
    [plan] = json.loads(project.cli("plan").stdout)["plans"]
    assert plan["changed"] == 20
    assert plan["notes"] == ["the next sync fails before sending anything: 20 of the 20 rows delivered before would "
                             "change (100.0%), over the 50% max_changed_pct of sync iterable_users (if the change "
                             "is meant (a field newly mapped, a transform changed on purpose, rows that left for good), `dinsync sync "
                             "iterable_users --force` runs it; otherwise fix the model and run again (nothing was "
                             "sent))"]
    result = project.sync()
    [run] = result["runs"]
    assert result["exit_code"] == ExitCode.RUN_FAILED and run["status"] == "failed"
    assert run["error"].startswith("nothing was sent: 20 of the 20 rows delivered before would change (100.0%)")
    assert "--force" in run["hint"]
    assert sent_users(project) == first  # nothing travelled
    assert project.sql("select _key, _fp from dinsync.snap_iterable_users order by _key") == before
    assert project.sync()["exit_code"] == ExitCode.RUN_FAILED  # every run, until fixed or forced

    # the Python API is held the same way, and lets `force` through as the CLI does
    api = dinsync.load_project(project.root)
    assert api.sync("iterable_users").exit_code == ExitCode.RUN_FAILED and sent_users(project) == first
    result = project.sync("--force")
    [run] = result["runs"]
    assert result["exit_code"] == ExitCode.OK and run["acknowledged"] == 20
    assert sent_users(project) == first + 20
    assert project.sync()["runs"][0]["changed"] == 0  # delivered: the next run is a no-op

    project.sql("update main.customers set plan = 'pro' where id <= 10")  # half: within 50%
    result = project.sync()
    assert result["exit_code"] == ExitCode.OK and result["runs"][0]["changed"] == 10
    project.sql("update main.customers set plan = 'team'")  # all again, but asked for in full
    result = project.sync("--full-refresh")
    assert result["exit_code"] == ExitCode.OK and result["runs"][0]["acknowledged"] == 20


def test_sync_help_says_force_sends_a_change_over_the_guard(project):
    helped = " ".join(project.cli("sync", "--help", json_output=False).output.replace("│", " ").split())
    assert "max_changed_pct" in helped and "--force" in helped, helped


def test_a_model_gone_empty_keeps_its_snapshot_until_forced(project):
    """With max_removed_pct, a model built empty (a failed upstream) fails before its removals leave the
    snapshot: once the model is back, nothing is sent again."""
    set_sync(project, thresholds="  max_removed_pct: 50\n")
    assert project.sync()["exit_code"] == ExitCode.OK
    project.sql("create table main.kept as select * from main.customers")
    project.sql("delete from main.customers")
    result = project.sync()
    [run] = result["runs"]
    assert result["exit_code"] == ExitCode.RUN_FAILED
    assert run["error"] == ("nothing was sent: 20 of the 20 rows delivered before would leave the model (100.0%), "
                            "over the 50% max_removed_pct of sync iterable_users")
    assert len(project.snapshot_keys()) == 20
    project.sql("insert into main.customers select * from main.kept")
    [run] = project.sync()["runs"]
    assert (run["status"], run["added"], run["changed"], run["removed"]) == ("success", 0, 0, 0)
    project.sql("delete from main.customers where id > 5")  # they left for good: forced
    [run] = project.sync("--force")["runs"]
    assert (run["status"], run["removed"]) == ("success", 15) and len(project.snapshot_keys()) == 5


def test_rows_parked_and_never_delivered_are_not_counted_as_delivered_before(project):
    """12 of 20 rows refused (parked, never delivered), the 8 delivered all changed: 100% of the rows
    delivered before, not 8 of 20 (40%, within a 50% limit, and sent)."""
    set_sync(project, thresholds="  max_changed_pct: 50\n")
    project.sql("update main.customers set email = 'bad' || id || '@@x' where id > 8")
    [run] = project.sync()["runs"]
    assert (run["acknowledged"], run["parked"]) == (8, 12)
    sent = sent_users(project)
    project.sql("update main.customers set plan = NULL where id <= 8")
    [plan] = json.loads(project.cli("plan").stdout)["plans"]
    assert any(n.startswith("the next sync fails before sending anything: 8 of the 8 rows delivered before would "
                            "change (100.0%)") for n in plan["notes"]), plan["notes"]
    result = project.sync()
    assert result["exit_code"] == ExitCode.RUN_FAILED, result["runs"][0]
    assert result["runs"][0]["error"].startswith("nothing was sent: 8 of the 8 rows delivered before")
    assert sent_users(project) == sent
