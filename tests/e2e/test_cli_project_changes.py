"""The project changes between two runs (a mapping edited, a column renamed, a new field): through
the CLI against the Iterable sandbox, what is sent next, and what the errors say."""
from __future__ import annotations

import orjson


def users_sent(project) -> list[dict]:
    return [u for body in project.requests.bodies("/api/users/bulkUpdate") for u in orjson.loads(body)["users"]]


def sandbox_user(project, email):
    return project.thread.call(project.sandbox.get_user, email=email)


def test_fields_swapped_between_columns_are_sent_for_every_row(project):
    """Fixing a mapping that sent first_name to lastName and plan to firstName: the model columns
    are the same, so the rows' fingerprints are too, yet every row must get its corrected fields."""
    project.write(fields=("first_name: lastName", "plan: firstName"))
    assert project.sync()["runs"][0]["acknowledged"] == 20
    project.write(fields=("first_name: firstName", "plan: lastName"))
    project.requests.clear()
    run = project.sync()["runs"][0]
    assert (run["changed"], run["acknowledged"]) == (20, 20)
    assert sandbox_user(project, "user3@example.com")["dataFields"] == {"firstName": "Name 3", "lastName": "free"}
    project.requests.clear()
    assert project.sync()["runs"][0]["sent"] == 0  # then nothing until something changes
    # and back, with one row changed meanwhile: every row again, each with its fields
    project.sql("update main.customers set plan = 'pro' where id = 4")
    project.write(fields=("first_name: lastName", "plan: firstName"))
    project.requests.clear()
    run = project.sync()["runs"][0]
    assert (run["changed"], run["acknowledged"]) == (20, 20)
    assert sandbox_user(project, "user4@example.com")["dataFields"] == {"firstName": "pro", "lastName": "Name 4"}
    # a `dinsync plan` after the edit says so, and changes nothing (a dry run): the next run sends
    project.write(fields=("first_name: firstName", "plan: lastName"))
    plan = orjson.loads(project.cli("plan").stdout)["plans"][0]
    assert any("the next sync compares every row" in n for n in plan["notes"]), plan["notes"]
    assert project.sync()["runs"][0]["acknowledged"] == 20


def test_a_mapping_emptied_is_a_located_config_error_for_validate_and_sync(project):
    project.sync()
    project.write(fields=())
    for command in ("validate", "plan", "sync"):
        result = project.cli(command)
        assert result.exit_code == 3, (command, result.stdout)
        [issue] = orjson.loads(result.stdout)["issues"]
        assert (issue["file"], issue["line"], issue["message"]) == ("syncs/iterable_users.yml", 8,
                                                                    "the sync maps no field"), command
    assert project.sql("select count(*) from dinsync.runs") == [(1,)]


def test_a_sync_pointed_at_another_destination_sends_it_every_row(project):
    """The snapshot says what the old destination holds, nothing of the new one: before, the run
    after the switch sent nothing at all (every row "unchanged")."""
    second = project.root / "dinsync.yml"
    text = second.read_text()
    block = text.split("destinations:\n")[1]
    second.write_text(text + block.replace("  iterable:", "  iterable_eu:"))
    assert project.sync()["runs"][0]["acknowledged"] == 20
    sync_file = project.root / "syncs" / "iterable_users.yml"
    sync_file.write_text(sync_file.read_text().replace("destination: iterable", "destination: iterable_eu"))
    plan = orjson.loads(project.cli("plan").stdout)["plans"][0]
    assert (plan["added"], plan["unchanged"], plan["full_refresh"]) == (20, 0, True)
    assert plan["notes"] == ["sync iterable_users now sends to iterable_eu (iterable users), no longer to iterable "
                             "(iterable users): every row is sent, as with --full-refresh"]
    project.requests.clear()
    result = project.cli("sync")
    run = orjson.loads(result.stdout)["runs"][0]
    assert (run["status"], run["full_refresh"], run["added"], run["acknowledged"]) == ("success", True, 20, 20)
    assert ("now sends to iterable_eu (iterable users), no longer to iterable (iterable users): every row is "
            "sent") in result.stderr
    assert len(users_sent(project)) == 20
    assert project.sql("select full_refresh from dinsync.runs order by started_at desc limit 1") == [(True,)]
    project.requests.clear()
    assert project.sync()["runs"][0]["sent"] == 0  # then only changes again


def test_a_sync_renamed_by_case_only_and_moved_sends_the_new_destination_every_row(project):
    """`iterable_users.yml` renamed `Iterable_Users.yml` (and pointed at another destination): a new
    sync, which sends every row. On DuckDB, whose names ignore case, its `snap_Iterable_Users` is
    the old name's table, while its records (under its new name) were none: the run found every row
    "unchanged" and sent nothing to the new destination."""
    config = project.root / "dinsync.yml"
    text = config.read_text()
    config.write_text(text + text.split("destinations:\n")[1].replace("  iterable:", "  iterable_eu:"))
    assert project.sync()["runs"][0]["acknowledged"] == 20
    old = project.root / "syncs" / "iterable_users.yml"
    (project.root / "syncs" / "Iterable_Users.yml").write_text(
        old.read_text().replace("destination: iterable", "destination: iterable_eu"))
    old.unlink()
    plan = orjson.loads(project.cli("plan").stdout)["plans"][0]
    assert (plan["added"], plan["unchanged"], plan["full_refresh"]) == (20, 0, True), plan
    project.requests.clear()
    result = project.cli("sync")
    run = orjson.loads(result.stdout)["runs"][0]
    assert (run["status"], run["full_refresh"], run["added"], run["acknowledged"]) == ("success", True, 20, 20), run
    assert ("sync Iterable_Users is new, and sync iterable_users (its name in another case) may have held its "
            "state tables") in result.stderr
    assert len(users_sent(project)) == 20
    project.requests.clear()
    assert project.sync()["runs"][0]["sent"] == 0  # then only changes again


def test_a_full_refresh_counts_the_keys_that_left_the_model_as_removed(project):
    """A full refresh plans every row as added; the keys that left the model leave the snapshot
    once it succeeds. `plan`, the run and `dinsync runs` said `removed` 0 all the same."""
    project.sync()
    project.sql("delete from main.customers where id in (3, 4)")
    project.sql("insert into main.customers select 99, email, user_id, first_name, plan, ltv from main.customers "
                "where id = 5")  # a key on two rows: withheld, not removed
    project.write(max_rejected_pct=50)
    sync_file = project.root / "syncs" / "iterable_users.yml"
    sync_file.write_text(sync_file.read_text() + "  max_duplicate_pct: 20\n")
    plan = orjson.loads(project.cli("plan", "--full-refresh").stdout)["plans"][0]
    assert (plan["added"], plan["removed"], plan["duplicate_keys"]) == (17, 2, 1), plan
    run = project.sync("--full-refresh")["runs"][0]
    assert (run["added"], run["removed"], run["acknowledged"]) == (17, 2, 17), run
    assert orjson.loads(project.cli("runs").stdout)["runs"][0]["removed"] == 2
    assert "user3@example.com" not in project.snapshot_keys()
    # a sync moved to another destination forgets the old one's snapshot: nothing is removed from it
    project.sql("delete from main.customers where id = 6")
    config = project.root / "dinsync.yml"
    config.write_text(config.read_text() + config.read_text().split("destinations:\n")[1].replace("  iterable:",
                                                                                                  "  iterable_eu:"))
    sync_file.write_text(sync_file.read_text().replace("destination: iterable", "destination: iterable_eu"))
    plan = orjson.loads(project.cli("plan").stdout)["plans"][0]
    run = project.sync()["runs"][0]
    assert (plan["full_refresh"], plan["removed"], run["full_refresh"], run["removed"]) == (True, 0, True, 0), run


def test_a_row_parked_under_a_fields_old_type_is_sent_again_once_the_type_is_fixed(project):
    """ltv now read from a text column: a changed row goes as a string, which Iterable's double
    field refuses (parked). Declaring `type: number` fixes the mapping, not the row's values: the
    row used to stay parked until its value changed."""
    project.sync()
    project.sql("alter table main.customers add column ltv_text varchar")
    project.sql("update main.customers set ltv_text = cast(ltv as varchar)")
    project.sql("update main.customers set ltv_text = '99.5' where id = 5")
    project.write(fields=("first_name: firstName", "plan: plan", "ltv_text: ltv"))
    (project.root / "models" / "customers.sql").write_text("-- primary_key: id\nselect * from main.customers\n")
    run = project.sync()["runs"][0]
    assert (run["changed"], run["rejected"], run["parked"]) == (1, 1, 1), run
    assert project.sync()["runs"][0]["sent"] == 0  # parked
    project.write(fields=("- {column: first_name, field: firstName}", "- {column: plan, field: plan}",
                          "- {column: ltv_text, field: ltv, type: number}"))
    (project.root / "models" / "customers.sql").write_text("-- primary_key: id\nselect * from main.customers\n")
    project.requests.clear()
    run = project.sync()["runs"][0]
    # the row parked under the old type is sent again; ltv, now typed, goes to every row
    assert (run["sent"], run["acknowledged"], run["parked"]) == (20, 20, 0), run
    sent = {u["email"]: u["dataFields"] for u in users_sent(project)}
    assert sent["user5@example.com"] == {"firstName": "Name 5", "plan": "free", "ltv": 99.5}
    assert sent["user4@example.com"] == {"ltv": 6.0}
    assert sandbox_user(project, "user5@example.com")["dataFields"]["ltv"] == 99.5


def test_a_fields_new_type_is_sent_for_every_row_and_other_edits_send_nothing(project):
    """The dates of a datetime column sent as `type: date` from now on: the values did not change,
    what the platform receives does. Reordering the mapping changes nothing."""
    project.sql("alter table main.customers add column signed_up timestamp")
    project.sql("update main.customers set signed_up = timestamp '2024-03-01 08:30:00' + id * interval 1 day")
    project.write(fields=("first_name: firstName", "signed_up: signedUp"))
    (project.root / "models" / "customers.sql").write_text("-- primary_key: id\nselect * from main.customers\n")
    project.sync()
    assert sandbox_user(project, "user2@example.com")["dataFields"]["signedUp"] == "2024-03-03T08:30:00"
    new_type = ("- {column: signed_up, field: signedUp, type: date}", "- {column: first_name, field: firstName}")
    project.write(fields=new_type)
    (project.root / "models" / "customers.sql").write_text("-- primary_key: id\nselect * from main.customers\n")
    # a plan of these files (a branch's, say) changes nothing a sync of the files before then does
    plan = project.cli("plan")
    assert plan.exit_code == 0 and "sends signedUp for every row" in plan.stdout
    project.write(fields=("first_name: firstName", "signed_up: signedUp"))
    (project.root / "models" / "customers.sql").write_text("-- primary_key: id\nselect * from main.customers\n")
    assert project.sync()["runs"][0]["sent"] == 0
    project.write(fields=new_type)
    (project.root / "models" / "customers.sql").write_text("-- primary_key: id\nselect * from main.customers\n")
    project.requests.clear()
    run = project.sync()["runs"][0]
    assert (run["changed"], run["acknowledged"]) == (20, 20)
    assert all(u["dataFields"].keys() == {"signedUp"} for u in users_sent(project))
    assert sandbox_user(project, "user2@example.com")["dataFields"]["signedUp"] == "2024-03-03"
    project.write(fields=("- {column: first_name, field: firstName}",
                          "- {column: signed_up, field: signedUp, type: date}"))
    (project.root / "models" / "customers.sql").write_text("-- primary_key: id\nselect * from main.customers\n")
    assert project.sync()["runs"][0]["sent"] == 0


def test_an_unchanged_project_writes_no_mapping_or_destination_record(project, monkeypatch):
    """The records of a sync's mapping and destination are written when they change, not by every
    run (a write transaction per no-op run: seconds and DML quota on BigQuery)."""
    from dinsync.state.store import StateStore

    project.sync()
    writes = []
    original = StateStore.set_meta_value
    monkeypatch.setattr(StateStore, "set_meta_value", lambda self, key, value: (writes.append(key),
                                                                               original(self, key, value)))
    for _ in range(2):
        assert project.sync()["runs"][0]["status"] == "success"
    assert orjson.loads(project.cli("plan").stdout)["plans"][0]["unchanged"] == 20
    assert writes == []
    project.write(fields=("first_name: firstName", "plan: tier", "ltv: ltv"))
    project.sync()
    assert writes == ["mapping:iterable_users"]


def test_a_key_column_turned_double_is_a_config_error_not_new_users(project):
    """Matched by userId from an integer column cast to DOUBLE in the model: the key's text form
    became '1.0', and the run removed every user from the snapshot and created 20 new ones."""
    project.write(match_column="id", match_field="userId")
    assert project.sync()["runs"][0]["acknowledged"] == 20
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\n"
        "select cast(id as double) as id, email, user_id, first_name, plan, ltv from main.customers\n")
    project.requests.clear()
    for command in ("validate", "sync"):
        result = project.cli(command)
        assert result.exit_code == 3, result.stdout
        [issue] = orjson.loads(result.stdout)["issues"]
        assert (issue["file"], issue["line"]) == ("syncs/iterable_users.yml", 6)
        assert "match column 'id' of model customers is of type DOUBLE" in issue["message"]
    assert users_sent(project) == []
    assert project.thread.call(lambda: len(project.sandbox.users)) == 20


def test_a_timestamptz_key_is_a_config_error_not_new_users_from_another_time_zone(project, monkeypatch):
    """Matched by userId from a TIMESTAMPTZ column: its text, the key, is written in the session's
    time zone (the host's TZ on DuckDB; PGTZ or the database's setting on PostgreSQL), so the run
    after a move from UTC to New York removed every user from the snapshot and created them again
    as `2023-12-31 19:00:01-05`. validate and sync refuse it, naming the casts that fix it."""
    project.sql("alter table main.customers add column created_at timestamptz")
    project.sql("update main.customers set created_at = timestamptz '2024-01-01 00:00:00+00' + to_seconds(id)")
    project.write(match_column="created_at", match_field="userId")
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect * from main.customers\n")
    for command in ("validate", "sync"):
        result = project.cli(command)
        assert result.exit_code == 3, result.stdout
        [issue] = orjson.loads(result.stdout)["issues"]
        assert (issue["file"], issue["line"]) == ("syncs/iterable_users.yml", 6)
        assert "match column 'created_at' of model customers is of type TIMESTAMP WITH TIME ZONE" in issue["message"]
        assert "CAST(EXTRACT(EPOCH FROM created_at) AS BIGINT)" in issue["hint"]
    assert users_sent(project) == []
    (project.root / "models" / "customers.sql").write_text(  # the hint's cast: one key per instant, anywhere
        "-- primary_key: id\n-- model_type: user\nselect * exclude (created_at), "
        "CAST(EXTRACT(EPOCH FROM created_at) AS BIGINT) AS created_at from main.customers\n")
    assert project.sync()["runs"][0]["acknowledged"] == 20
    monkeypatch.setenv("TZ", "America/New_York")
    run = project.sync()["runs"][0]
    assert (run["added"], run["removed"], run["sent"]) == (0, 0, 0), run


def test_a_field_mapped_again_under_another_type_is_sent_for_every_row_in_that_form(project):
    """signedUp sent as a datetime, then unmapped (or renamed away), then mapped again as a date:
    the snapshot kept its hashes of the datetimes while it was unmapped, and the record of the
    mapping in between did not map it, so it was not seen as retyped: the values compared equal and
    the platform kept the datetimes."""
    model = "-- primary_key: id\nselect * from main.customers\n"

    def mapping(*fields):
        project.write(fields=fields)
        (project.root / "models" / "customers.sql").write_text(model)

    project.sql("alter table main.customers add column signed_up timestamp")
    project.sql("update main.customers set signed_up = timestamp '2024-03-01 08:30:00' + id * interval 1 day")
    mapping("first_name: firstName", "signed_up: signedUp")
    project.sync()
    assert sandbox_user(project, "user2@example.com")["dataFields"]["signedUp"] == "2024-03-03T08:30:00"
    mapping("first_name: firstName")  # removed
    assert project.sync()["runs"][0]["sent"] == 0
    mapping("- {column: first_name, field: firstName}", "- {column: signed_up, field: signedUp, type: date}")
    project.requests.clear()
    run = project.sync()["runs"][0]
    assert (run["changed"], run["acknowledged"]) == (20, 20), run
    assert all(u["dataFields"].keys() == {"signedUp"} for u in users_sent(project))
    assert sandbox_user(project, "user2@example.com")["dataFields"]["signedUp"] == "2024-03-03"
    assert project.sync()["runs"][0]["sent"] == 0
    # renamed away, then back under its old type: every row again, as a datetime
    mapping("- {column: first_name, field: firstName}", "- {column: signed_up, field: signedOn, type: date}")
    assert project.sync()["runs"][0]["acknowledged"] == 20
    mapping("first_name: firstName", "signed_up: signedUp")
    run = project.sync()["runs"][0]
    assert (run["changed"], run["acknowledged"]) == (20, 20), run
    assert sandbox_user(project, "user2@example.com")["dataFields"]["signedUp"] == "2024-03-03T08:30:00"
    assert project.sync()["runs"][0]["sent"] == 0


def test_a_key_duplicated_when_the_sync_moved_reaches_the_new_destination_once_on_one_row(project):
    """The run that moved the sync to another destination withholds a duplicated key; its snapshot
    row, which says what the old destination holds, stayed: once the key was on one row again with
    the values of then, it was "unchanged" and never sent to the new destination."""
    text = (project.root / "dinsync.yml").read_text()
    (project.root / "dinsync.yml").write_text(text + text.split("destinations:\n")[1].replace("  iterable:",
                                                                                                "  iterable_eu:"))
    assert project.sync()["runs"][0]["acknowledged"] == 20
    project.sql("insert into main.customers select 100, ' USER3@example.com', 'u-100', 'Dup', 'dup', 0")
    sync_file = project.root / "syncs" / "iterable_users.yml"
    sync_file.write_text(sync_file.read_text().replace("destination: iterable", "destination: iterable_eu")
                         .replace("max_rejected_pct: 50", "max_rejected_pct: 50\n  max_duplicate_pct: 10"))
    project.requests.clear()
    run = project.sync()["runs"][0]
    assert (run["full_refresh"], run["duplicate_keys"], run["acknowledged"]) == (True, 1, 19), run
    assert "user3@example.com" not in {u["email"] for u in users_sent(project)}
    project.sql("delete from main.customers where id = 100")  # back on one row, with the values of then
    project.requests.clear()
    run = project.sync()["runs"][0]
    assert (run["full_refresh"], run["added"], run["acknowledged"]) == (False, 1, 1), run
    assert [u["email"] for u in users_sent(project)] == ["user3@example.com"]
    assert project.sync()["runs"][0]["sent"] == 0


def test_a_sync_matching_by_another_field_sends_every_row_under_that_key(project):
    """The email column matched as `userId` instead of `email` (a hybrid Iterable project): the keys'
    text is the same, but the snapshot says what the users found by email hold, nothing of users found
    by userId. Before, the run after the edit sent nothing, and a row changed later created a user
    holding only that one field (plan), never its firstName or ltv."""
    assert project.sync()["runs"][0]["acknowledged"] == 20
    project.write(match_column="email", match_field="userId")
    plan = orjson.loads(project.cli("plan").stdout)["plans"][0]
    assert (plan["added"], plan["unchanged"], plan["full_refresh"]) == (20, 0, True), plan
    assert plan["notes"] == ["sync iterable_users now matches iterable (iterable users) by userId, no longer by "
                             "email: every row is sent, as with --full-refresh"]
    project.requests.clear()
    result = project.cli("sync")
    run = orjson.loads(result.stdout)["runs"][0]
    assert (run["status"], run["full_refresh"], run["added"], run["acknowledged"]) == ("success", True, 20, 20)
    assert "now matches iterable (iterable users) by userId, no longer by email" in result.stderr
    sent = users_sent(project)
    assert len(sent) == 20 and all(u.keys() >= {"userId"} and u["dataFields"].keys() == {"firstName", "plan", "ltv"}
                                   for u in sent), sent[:2]
    project.sql("update main.customers set plan = 'pro' where id = 3")
    project.requests.clear()
    assert project.sync()["runs"][0]["acknowledged"] == 1
    user = project.thread.call(project.sandbox.get_user, user_id="user3@example.com")
    assert user["dataFields"] == {"firstName": "Name 3", "plan": "pro", "ltv": 4.5}
    project.requests.clear()
    assert project.sync()["runs"][0]["sent"] == 0
    # another match column, same field: the same records (by userId), nothing to resend
    project.sql("alter table main.customers add column login varchar")
    project.sql("update main.customers set login = upper(email)")
    project.write(match_column="login", match_field="userId")
    (project.root / "models" / "customers.sql").write_text("-- primary_key: id\nselect * from main.customers\n")
    run = project.sync()["runs"][0]
    assert (run["full_refresh"], run["added"], run["removed"]) == (False, 20, 20), run


def test_a_plan_of_a_branch_mapping_a_new_field_does_not_resend_the_parked_rows_of_the_next_sync(project):
    """`dinsync plan` of a branch's files that map one more field (a pull request's CI, say) added
    its snapshot column and forgot every row's fingerprint and parking: the next sync of the
    production files sent the parked row again (to be rejected again)."""
    assert project.sync()["runs"][0]["acknowledged"] == 20
    project.sql("update main.customers set ltv = 'nan'::double where id = 5")
    assert project.sync()["runs"][0]["parked"] == 1
    project.write(fields=("first_name: firstName", "plan: plan", "ltv: ltv", "user_id: extId"))
    plan = orjson.loads(project.cli("plan").stdout)["plans"][0]
    assert (plan["changed"], plan["field_changes"]["extId"]) == (20, 20), plan
    assert any("sends extId for every row" in n for n in plan["notes"]), plan["notes"]
    project.write()  # the production files
    project.requests.clear()
    run = project.sync()["runs"][0]
    assert (run["sent"], run["rejected"], run["parked"]) == (0, 0, 1), run
    assert users_sent(project) == []
    # the branch merged: the new field goes to every row, and the row parked under the old mapping
    # is tried once more
    project.write(fields=("first_name: firstName", "plan: plan", "ltv: ltv", "user_id: extId"))
    run = project.sync()["runs"][0]
    assert (run["acknowledged"], run["rejected"], run["parked"]) == (19, 1, 1), run
    assert project.sync()["runs"][0]["sent"] == 0


def test_a_plan_of_a_branch_swapping_fields_does_not_hide_a_change_from_the_next_sync(project):
    """A row whose two mapped columns swapped their values, seen by `dinsync plan` of a branch
    whose mapping swaps the two fields between those columns: under that mapping the row holds what
    was delivered, so the dry run wrote its new fingerprint into the snapshot ("refresh"). The
    fingerprint hashes the same columns in the same order whatever fields they feed, so the next
    sync of the production files found the row unchanged and never sent the new values."""
    project.write(fields=("first_name: firstName", "plan: plan"))
    assert project.sync()["runs"][0]["acknowledged"] == 20
    project.sql("update main.customers set first_name = 'free', plan = 'Name 3' where id = 3")
    project.write(fields=("first_name: plan", "plan: firstName"))  # the branch's files
    assert project.cli("plan").exit_code == 0
    project.write(fields=("first_name: firstName", "plan: plan"))  # the production files
    project.requests.clear()
    run = project.sync()["runs"][0]
    assert (run["changed"], run["acknowledged"]) == (1, 1), run
    assert users_sent(project) == [{"email": "user3@example.com",
                                    "dataFields": {"firstName": "free", "plan": "Name 3"}}]
    assert sandbox_user(project, "user3@example.com")["dataFields"] == {"firstName": "free", "plan": "Name 3"}


def test_a_new_phone_region_sends_the_phone_fields_again_and_the_rows_parked_under_the_old_one(project):
    """UK numbers written in national form, parsed as US numbers: every row rejected (parked).
    Fixing the destination's `phone_region` fixes how the values are read, not the values: the rows
    stayed parked until they changed, and numbers delivered under the old region kept that form."""
    project.thread.call(lambda: project.sandbox.options.__setattr__("limits", False))
    project.sql("alter table main.customers add column phone varchar")
    project.sql("update main.customers set phone = '020 7946 01' || lpad(cast(id as varchar), 2, '0')")
    project.sql("update main.customers set phone = '(415) 555-0102' where id = 2")  # right under US
    model = "-- primary_key: id\n-- model_type: user\nselect id, email, first_name, phone from main.customers\n"

    def files(region):
        project.write(fields=("first_name: firstName", "phone: phoneNumber"),
                      destination_extra=f"    phone_region: {region}\n")
        (project.root / "models" / "customers.sql").write_text(model)

    files("US")
    run = project.sync()["runs"][0]
    assert (run["acknowledged"], run["parked"]) == (1, 19), run
    assert sandbox_user(project, "user2@example.com")["dataFields"]["phoneNumber"] == "+14155550102"
    files("GB")
    plan = orjson.loads(project.cli("plan").stdout)["plans"][0]
    assert any("phone_region" in n and "US" in n and "GB" in n for n in plan["notes"]), plan["notes"]
    project.requests.clear()
    run = project.sync()["runs"][0]
    assert (run["acknowledged"], run["rejected"], run["parked"]) == (19, 1, 1), run
    assert sandbox_user(project, "user7@example.com")["dataFields"] == {"firstName": "Name 7",
                                                                          "phoneNumber": "+442079460107"}
    # (415) 555-0102 is no UK number: rejected under the new region, the platform keeps the US one
    assert sandbox_user(project, "user2@example.com")["dataFields"]["phoneNumber"] == "+14155550102"
    project.requests.clear()
    assert project.sync()["runs"][0]["sent"] == 0


def test_a_destination_pointed_at_another_address_sends_it_every_row(project, monkeypatch):
    """The destination's `base_url` (or `region`) changed: tried against the sandbox, then pointed at
    the platform; or moved from one Iterable data center to the other. The snapshot says what the
    old address holds, nothing of the new one: the run after the edit found every row unchanged and
    sent nothing there (README: "not noticed: run --full-refresh")."""
    from dinsync.sandbox import IterableSandbox, SandboxThread
    from tests.conftest import TEST_KEY

    assert project.sync()["runs"][0]["acknowledged"] == 20
    other = IterableSandbox([TEST_KEY])
    thread = SandboxThread(other)
    thread.start()
    try:
        config = project.root / "dinsync.yml"
        config.write_text(config.read_text().replace(project.base_url, thread.url))
        plan = orjson.loads(project.cli("plan").stdout)["plans"][0]
        assert (plan["added"], plan["unchanged"], plan["full_refresh"]) == (20, 0, True), plan
        assert plan["notes"] == [f"sync iterable_users's destination iterable now reaches {thread.url}, no longer "
                                 f"{project.base_url}: every row is sent, as with --full-refresh"], plan["notes"]
        result = project.cli("sync")
        run = orjson.loads(result.stdout)["runs"][0]
        assert (run["status"], run["full_refresh"], run["acknowledged"]) == ("success", True, 20), run
        assert f"now reaches {thread.url}" in result.stderr
        assert thread.call(lambda: len(other.users)) == 20
        assert project.sync()["runs"][0]["sent"] == 0  # then only changes again
        # the same address written otherwise (a trailing slash, a proxy's password) is the same address,
        # and the state never holds that password
        monkeypatch.setenv("PROXY_PASSWORD", "proxy-pw-8c1f27")
        proxied = thread.url.replace("http://", "http://api:${env:PROXY_PASSWORD}@") + "/"
        config.write_text(config.read_text().replace(thread.url, proxied))
        assert project.sync()["runs"][0]["sent"] == 0
        assert project.sql("select value from dinsync.meta where key = 'account:iterable_users'") == [(thread.url,)]
    finally:
        thread.stop()
