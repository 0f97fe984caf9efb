"""Two sync names writing the same records (same destination, service and matching field): a sync
file renamed and renamed back, a renamed copy run with `--select`, a sync deleted and re-added.
Each sync's snapshot says what *it* delivered; once another sync wrote a field it maps, that field
must be sent again for every row, else a value changed back to what the snapshot holds is never
sent (a lost update). Through the CLI against the Iterable sandbox."""
from __future__ import annotations

import orjson

from .test_cli_project_changes import sandbox_user, users_sent


def rename(project, old: str, new: str) -> None:
    syncs = project.root / "syncs"
    (syncs / f"{old}.yml").rename(syncs / f"{new}.yml")


def plan_of(project, email: str) -> str:
    return sandbox_user(project, email)["dataFields"]["plan"]


def test_a_sync_renamed_and_renamed_back_sends_a_value_changed_back(project):
    """users -> customers (plan pro -> team, delivered by customers) -> users again (team -> pro):
    snap_iterable_users still says `pro` was delivered; before, the last run sent nothing and the
    platform kept `team`."""
    project.sql("update main.customers set plan = 'pro' where id = 3")
    assert project.sync()["runs"][0]["acknowledged"] == 20
    rename(project, "iterable_users", "customers")
    project.sql("update main.customers set plan = 'team' where id = 3")
    assert project.sync()["runs"][0]["acknowledged"] == 20  # a new name: every row, as a first sync
    assert plan_of(project, "user3@example.com") == "team"
    rename(project, "customers", "iterable_users")
    project.sql("update main.customers set plan = 'pro' where id = 3")
    plan = orjson.loads(project.cli("plan").stdout)["plans"][0]
    note = ("sync customers wrote firstName, plan, ltv to the same records (iterable (iterable users) by email) "
            "after this sync's last run: the next sync sends them for every row (this plan does not count that)")
    assert note in plan["notes"], plan["notes"]
    project.requests.clear()
    result = project.cli("sync")
    run = orjson.loads(result.stdout)["runs"][0]
    assert (run["status"], run["changed"], run["acknowledged"]) == ("success", 20, 20), run
    assert ("sync customers wrote firstName, plan, ltv to the same records (iterable (iterable users) by email) "
            "after this sync's last run: sending them for every row") in result.stderr
    assert plan_of(project, "user3@example.com") == "pro"
    assert len(users_sent(project)) == 20
    project.requests.clear()
    assert project.sync()["runs"][0]["sent"] == 0  # then only changes again
    # and the other name, run again later, knows iterable_users wrote after it
    rename(project, "iterable_users", "customers")
    project.sql("update main.customers set plan = 'team' where id = 3")
    assert project.sync()["runs"][0]["acknowledged"] == 20
    assert plan_of(project, "user3@example.com") == "team"


def test_a_renamed_copy_run_with_select_makes_the_other_send_its_shared_fields_again(project):
    """Two sync files for the same records, run alternately: each resends the fields both map (for
    every row: which rows the other wrote is not known) and only those."""
    syncs = project.root / "syncs"
    text = (syncs / "iterable_users.yml").read_text()
    (syncs / "users_copy.yml").write_text(text.replace("  ltv: ltv\n", ""))  # firstName, plan
    assert project.sync("iterable_users")["runs"][0]["acknowledged"] == 20
    project.sql("update main.customers set plan = 'team' where id = 5")
    assert project.sync("--select", "users_copy")["runs"][0]["acknowledged"] == 20
    project.sql("update main.customers set plan = 'free' where id = 5")
    project.requests.clear()
    run = project.sync("iterable_users")["runs"][0]
    assert (run["changed"], run["acknowledged"]) == (20, 20), run
    sent = {u["email"]: u["dataFields"] for u in users_sent(project)}
    assert sent["user5@example.com"] == {"firstName": "Name 5", "plan": "free"}  # not ltv: only it wrote ltv
    assert plan_of(project, "user5@example.com") == "free"
    project.requests.clear()
    run = project.sync("users_copy")["runs"][0]  # iterable_users wrote firstName and plan since
    assert (run["changed"], run["acknowledged"]) == (20, 20), run
    assert project.sync("users_copy")["runs"][0]["sent"] == 0  # then only changes, until the other writes them
    assert project.sql("select key, value from dinsync.meta where key like 'wrote:%' order by key") == [
        ("wrote:iterable (iterable users) by email:firstName", "users_copy"),
        ("wrote:iterable (iterable users) by email:ltv", "iterable_users"),
        ("wrote:iterable (iterable users) by email:plan", "users_copy")]


def test_syncs_writing_other_fields_of_the_same_records_send_only_changes(project):
    """The everyday setup of several syncs per destination object: disjoint fields never resend."""
    project.write(fields=("first_name: firstName",))
    syncs = project.root / "syncs"
    (syncs / "plans.yml").write_text((syncs / "iterable_users.yml").read_text().replace(
        "  first_name: firstName\n", "  plan: plan\n  ltv: ltv\n"))
    assert [r["acknowledged"] for r in project.sync()["runs"]] == [20, 20]
    project.sql("update main.customers set plan = 'pro', first_name = 'Ann' where id = 2")
    assert [(r["changed"], r["sent"]) for r in project.sync()["runs"]] == [(1, 1), (1, 1)]
    assert [r["sent"] for r in project.sync()["runs"]] == [0, 0]
    assert sandbox_user(project, "user2@example.com")["dataFields"] == {"firstName": "Ann", "plan": "pro",
                                                                        "ltv": 3.0}


def test_a_sync_deleted_then_added_again_after_another_took_over_sends_its_fields_again(project):
    syncs = project.root / "syncs"
    assert project.sync()["runs"][0]["acknowledged"] == 20
    text = (syncs / "iterable_users.yml").read_text()
    (syncs / "iterable_users.yml").unlink()
    (syncs / "successor.yml").write_text(text.replace("  first_name: firstName\n", ""))  # plan, ltv
    project.sql("update main.customers set ltv = 99 where id = 7")
    assert project.sync()["runs"][0]["acknowledged"] == 20
    (syncs / "successor.yml").unlink()
    (syncs / "iterable_users.yml").write_text(text)
    project.sql("update main.customers set ltv = 10.5 where id = 7")  # back to what snap_iterable_users holds
    project.requests.clear()
    run = project.sync()["runs"][0]
    assert (run["changed"], run["acknowledged"]) == (20, 20), run
    assert sandbox_user(project, "user7@example.com")["dataFields"]["ltv"] == 10.5
    assert {tuple(u["dataFields"]) for u in users_sent(project)} == {("plan", "ltv")}  # firstName: its own


def test_a_no_op_run_reads_the_shared_records_in_the_query_it_already_made(project, monkeypatch):
    """The check costs the everyday run no query of its own, and writes nothing."""
    from dinsync.state.store import StateStore

    project.sync()
    calls = []
    original = StateStore.meta_values
    monkeypatch.setattr(StateStore, "meta_values", lambda self, *keys: (calls.append(keys),
                                                                        original(self, *keys))[1])
    writes = []
    for name in ("set_meta_value", "set_meta_values"):
        method = getattr(StateStore, name)
        monkeypatch.setattr(StateStore, name, lambda self, *a, _m=method: (writes.append(a), _m(self, *a))[1])
    assert project.sync()["runs"][0]["sent"] == 0
    assert len(calls) == 1 and writes == []


def test_the_other_syncs_run_that_failed_after_the_platform_applied_its_rows_counts_too(project, monkeypatch):
    """Writes are recorded before sending: a run of the other name whose requests were applied but
    never acknowledged (connection reset after the platform applied them) wrote all the same."""
    import functools

    import dinsync.sender.http as http
    from dinsync.sandbox.faults import reset_after_apply

    monkeypatch.setattr(http, "RetryPolicy", functools.partial(http.RetryPolicy, base=0.01, cap=0.02))
    syncs = project.root / "syncs"
    assert project.sync()["runs"][0]["acknowledged"] == 20
    (syncs / "users_copy.yml").write_text((syncs / "iterable_users.yml").read_text())
    project.sql("update main.customers set plan = 'team' where id = 6")
    project.thread.script("bulkUpdate", reset_after_apply(), times=1000)
    run = project.sync("users_copy")["runs"][0]
    assert (run["status"], run["acknowledged"]) == ("failed", 0), run
    assert plan_of(project, "user6@example.com") == "team"
    project.thread.call(lambda: project.sandbox.faults.clear())
    project.sql("update main.customers set plan = 'free' where id = 6")
    run = project.sync("iterable_users")["runs"][0]
    assert (run["status"], run["changed"], run["acknowledged"]) == ("success", 20, 20), run
    assert plan_of(project, "user6@example.com") == "free"
