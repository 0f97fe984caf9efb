"""`dinsync sync NAME` / `plan NAME` check the columns of the chosen syncs' models only: a model
that only other syncs use (here one whose table dbt has not built yet) does not stop them, while
`validate` and a run of every sync still report it."""
from __future__ import annotations

import json

import pytest

import dinsync
from dinsync.errors import ExitCode

PROSPECTS_MODEL = "-- primary_key: id\nselect * from main.prospects\n"
PROSPECTS_SYNC = """\
model: prospects
destination: iterable
service: users
mode: upsert
match: {column: email, field: email}
fields: {first_name: firstName}
"""


def add_unbuilt_model(project) -> None:
    (project.root / "models" / "prospects.sql").write_text(PROSPECTS_MODEL)
    (project.root / "syncs" / "iterable_prospects.yml").write_text(PROSPECTS_SYNC)


def issue_files(result) -> list[str]:
    return [issue["file"] for issue in json.loads(result.stdout)["issues"]]


def test_a_sync_runs_when_only_another_syncs_model_fails_in_the_warehouse(project):
    add_unbuilt_model(project)

    one = project.sync("iterable_users")
    assert one["exit_code"] == 0
    assert [(r["sync"], r["status"], r["acknowledged"]) for r in one["runs"]] == [("iterable_users", "success", 20)]
    planned = project.cli("plan", "iterable_users")
    assert planned.exit_code == 0 and [p["sync"] for p in json.loads(planned.stdout)["plans"]] == ["iterable_users"]
    assert dinsync.load_project(project.root).sync(select="iterable_users").exit_code == 0

    # every sync, the failing one's by name, and validate: the unbuilt model is a configuration error
    for args in (("sync",), ("sync", "iterable_prospects"), ("plan",), ("validate",)):
        result = project.cli(*args)
        assert result.exit_code == ExitCode.CONFIG_ERROR, args
        assert issue_files(result) == ["models/prospects.sql"], args
    assert project.sql("select count(*) from dinsync.runs")[0][0] == 2  # the two runs of iterable_users

    # once dbt has built it, everything runs
    project.sql("create table main.prospects as select 1 as id, 'p1@example.com' as email, 'P' as first_name")
    assert project.sync()["exit_code"] == 0


def test_plan_of_every_sync_shows_the_others_when_one_fails_while_planning(project):
    """A model that fails in the warehouse only on its rows (a cast: its columns check out) failed
    the whole `dinsync plan`: the plans of the other syncs, built already, were never shown. Each
    sync is planned whatever the others did, as `sync` runs them; the worst exit code wins."""
    (project.root / "models" / "prospects.sql").write_text(
        "-- primary_key: id\nselect * from main.customers where cast(plan as integer) > 0\n")
    (project.root / "syncs" / "a_prospects.yml").write_text(PROSPECTS_SYNC)
    result = project.cli("plan")
    assert result.exit_code == ExitCode.RUN_FAILED, result.stdout
    data = json.loads(result.stdout)
    assert [p["sync"] for p in data["plans"]] == ["iterable_users"] and data["plans"][0]["added"] == 20
    [error] = data["errors"]
    assert error["sync"] == "a_prospects" and "Could not convert string 'free'" in error["error"]
    assert data["exit_code"] == ExitCode.RUN_FAILED
    text = project.cli("plan", json_output=False)
    assert text.exit_code == ExitCode.RUN_FAILED and "iterable_users: +20 added" in text.stdout
    assert "a_prospects: models/prospects.sql:2: model prospects failed" in text.stderr
    # one sync alone fails as before
    alone = project.cli("plan", "a_prospects")
    assert alone.exit_code == ExitCode.RUN_FAILED and "plans" not in json.loads(alone.stdout)


def test_the_apis_plan_of_every_sync_shows_the_others_when_one_fails_while_planning(project):
    """`dinsync plan` plans each sync whatever the others did (4ad7c2c1), but the API's `plan()`, which
    the README says runs the same functions and gives the CLI's JSON, still raised the first failure:
    the plans of the other syncs were lost. It gives them, the failures in `errors` (the CLI's), the
    worst `exit_code`; one sync alone raises its error, as the CLI fails with it."""
    (project.root / "models" / "prospects.sql").write_text(
        "-- primary_key: id\nselect * from main.customers where cast(plan as integer) > 0\n")
    (project.root / "syncs" / "a_prospects.yml").write_text(PROSPECTS_SYNC)
    api = dinsync.load_project(project.root)
    result = api.plan()
    assert [p.sync for p in result.plans] == ["iterable_users"] and result.plans[0].added == 20
    assert result.exit_code == ExitCode.RUN_FAILED and not result.ok
    cli = json.loads(project.cli("plan").stdout)
    assert result.errors == cli["errors"] and result.errors[0]["sync"] == "a_prospects", result.errors
    assert {k: v for k, v in result.as_dict().items() if k != "notes"} == cli
    with pytest.raises(dinsync.SyncFailed):
        result.raise_for_status()
    with pytest.raises(dinsync.DinsyncError, match="Could not convert string 'free'"):
        api.plan(select="a_prospects")
    (project.root / "syncs" / "a_prospects.yml").unlink()
    alone = api.plan()
    assert (alone.exit_code, alone.errors) == (ExitCode.OK, [])
