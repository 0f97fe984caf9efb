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
    # a `dinsync plan` after the edit shows it too (and leaves it to the next run to send)
    project.write(fields=("first_name: firstName", "plan: lastName"))
    plan = orjson.loads(project.cli("plan").stdout)["plans"][0]
    assert plan["changed"] == 20
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
