"""Two sync names writing the same records (same destination, service and matching field): a sync
file renamed and renamed back, a renamed copy run with `--select`, a sync deleted and re-added.
Each sync's snapshot says what *it* delivered; once another sync started writing a field it maps
after it last did, that field must be sent again for every row (once), else a value changed back
to what the snapshot holds is never sent (a lost update). Through the CLI against the Iterable sandbox."""
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
    # A known limitation (README, "Several syncs, the same records"): renamed once more, customers
    # wrote plan after iterable_users first did, so it resends nothing, and a value changed back to
    # what its own snapshot holds is not sent (the platform keeps iterable_users' `pro`).
    rename(project, "iterable_users", "customers")
    project.sql("update main.customers set plan = 'team' where id = 3")
    assert project.sync()["runs"][0]["sent"] == 0
    assert plan_of(project, "user3@example.com") == "pro"


def test_a_renamed_copy_run_with_select_makes_the_other_send_its_shared_fields_again(project):
    """A copy of a sync file run with --select, then the original: the original resends, once, the
    fields both map (for every row: which rows the copy wrote is not known) and only those. The
    copy started writing after the original did: it sends only its changes."""
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
    assert project.sync("iterable_users")["runs"][0]["sent"] == 0  # once
    project.requests.clear()
    run = project.sync("users_copy")["runs"][0]  # its snapshot holds `team` for user 5: only that row
    assert (run["changed"], run["acknowledged"]) == (1, 1), run
    assert project.sync("users_copy")["runs"][0]["sent"] == 0
    wrote = {key: orjson.loads(value) for key, value in project.sql(
        "select key, value from dinsync.meta where key like 'wrote:%' order by key")}
    prefix = "wrote:iterable (iterable users) by email:"
    assert {key: sorted(writers) for key, writers in wrote.items()} == {
        prefix + "firstName": ["iterable_users", "users_copy"], prefix + "ltv": ["iterable_users"],
        prefix + "plan": ["iterable_users", "users_copy"]}
    plan, first_name, ltv = wrote[prefix + "plan"], wrote[prefix + "firstName"], wrote[prefix + "ltv"]
    assert ltv["iterable_users"]["first"] == ltv["iterable_users"]["last"] == plan["iterable_users"]["first"]
    assert plan["iterable_users"]["first"] < plan["users_copy"]["first"] < plan["iterable_users"]["last"]
    # it sent user 5's plan, with a record of writing plan already: an everyday run writes nothing
    # (an older `last` only errs towards a resend)
    assert plan["users_copy"]["first"] == plan["users_copy"]["last"]
    assert first_name["users_copy"]["first"] == first_name["users_copy"]["last"]  # it sent no firstName since


def test_syncs_writing_the_same_field_from_disjoint_segments_resend_it_once_at_most(project):
    """The everyday setup of two syncs setting the same field on different users (paid_users and
    free_users both map plan): their snapshots are right as they are (a row moving between the
    segments leaves one and is added to the other). The sync that wrote first resends once, when
    the other first appears; after that, both send only their changes, run after run."""
    models, syncs = project.root / "models", project.root / "syncs"
    model = (models / "customers.sql").read_text()
    (models / "paid.sql").write_text(model.rstrip() + " where plan <> 'free'\n")
    (models / "free.sql").write_text(model.rstrip() + " where plan = 'free'\n")
    text = (syncs / "iterable_users.yml").read_text()
    (syncs / "iterable_users.yml").unlink()
    (syncs / "paid_users.yml").write_text(text.replace("model: customers", "model: paid"))
    (syncs / "free_users.yml").write_text(text.replace("model: customers", "model: free"))
    project.sql("update main.customers set plan = 'pro' where id <= 5")
    assert [(r["sync"], r["added"]) for r in project.sync()["runs"]] == [("free_users", 15), ("paid_users", 5)]
    sent = []
    notes = 0
    for i in range(6, 12):  # a free user upgrades, another paid user's plan changes, every day
        project.sql(f"update main.customers set plan = 'pro' where id = {i}")
        project.sql(f"update main.customers set plan = 'team' where id = {i - 5}")
        result = project.cli("sync")
        notes += result.stderr.count("to the same records")
        sent.append([(r["sync"], r["added"], r["changed"], r["sent"]) for r in orjson.loads(result.stdout)["runs"]])
        assert sandbox_user(project, f"user{i}@example.com")["dataFields"]["plan"] == "pro"
        assert sandbox_user(project, f"user{i - 5}@example.com")["dataFields"]["plan"] == "team"
    # free_users first ran before paid_users did: it resends once (its 14 rows), then only changes;
    # paid_users never resends (it never wrote plan before free_users started)
    assert sent[0] == [("free_users", 0, 14, 14), ("paid_users", 1, 1, 2)], sent
    assert all(runs == [("free_users", 0, 0, 0), ("paid_users", 1, 1, 2)] for runs in sent[1:]), sent
    assert notes == 1


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
    """The check costs the everyday run (nothing to send, or changes to send) no query of its own,
    and writes nothing."""
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
    # a run that sends changes, when the sync has a record of writing every field already: no
    # query or write of its own either (its `last` stays: it only errs towards a resend)
    project.sql("update main.customers set plan = 'team' where id = 7")
    assert project.sync()["runs"][0]["sent"] == 1
    assert len(calls) == 2 and writes == []


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


def test_a_renamed_sync_says_it_sends_every_row_and_names_the_old_name_left_behind(project):
    """A sync file renamed is a new sync, which sends every row (README): `plan` and the run said
    nothing of it (first_sync, no note), so a rename in a pull request resent a whole segment
    unannounced and left the old name's snapshot behind for good."""
    assert project.sync()["runs"][0]["acknowledged"] == 20
    rename(project, "iterable_users", "customers")
    note = ("sync customers is new: every row is sent; sync iterable_users, which is not in this project, wrote the "
            "same records (iterable (iterable users) by email): a sync renamed starts anew, and the old name's state "
            "stays (snap_iterable_users in the state schema: drop it once it is not wanted)")
    plan = orjson.loads(project.cli("plan").stdout)["plans"][0]
    assert (plan["first_sync"], plan["added"], plan["notes"]) == (True, 20, [note]), plan
    result = project.cli("sync")
    assert orjson.loads(result.stdout)["runs"][0]["acknowledged"] == 20
    assert note in result.stderr
    assert "is new" not in project.cli("sync").stderr  # said once
    # a new sync of other records (users found by userId) is just new
    (project.root / "syncs" / "by_user_id.yml").write_text((project.root / "syncs" / "customers.yml").read_text()
                                                           .replace("column: email", "column: user_id")
                                                           .replace("field: email", "field: userId"))
    plan = orjson.loads(project.cli("plan", "by_user_id").stdout)["plans"][0]
    assert (plan["first_sync"], plan["notes"]) == (True, []), plan
