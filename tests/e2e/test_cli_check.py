"""`dinsync check` and blocked models: NULL and duplicated keys counted in the warehouse, the same
verdict before every sync (from the plan's own figures), through the CLI."""
from __future__ import annotations

import json

from dinsync.errors import ExitCode

LEADS_MODEL = """\
-- primary_key: id
-- model_type: user
select id, email, first_name, plan, ltv from main.leads
"""


def add_rows(project, *rows) -> None:
    """rows: (id, email); other columns are filled in."""
    for id_, email in rows:
        project.sql("insert into main.customers values (?, ?, 'u-' || ?, 'Dup', 'free', 1.0)", id_, email, id_)


def check(project, *args):
    result = project.cli("check", *args)
    return json.loads(result.stdout), result.exit_code


def test_a_clean_model_checks_ok_once_per_model(project):
    (project.root / "syncs" / "iterable_users_b.yml").write_text(
        (project.root / "syncs" / "iterable_users.yml").read_text())
    data, code = check(project)
    assert code == 0, data
    model, = data["models"]  # two syncs, one model, counted once
    assert (model["model"], model["rows"], model["status"]) == ("customers", 20, "ok")
    assert model["syncs"] == ["iterable_users", "iterable_users_b"]
    email, pk = model["keys"]
    assert (email["column"], email["normalization"], email["primary_key"]) == ("email", "email", False)
    assert email["syncs"] == ["iterable_users", "iterable_users_b"] and email["limit_pct"] == 5.0
    assert (pk["column"], pk["normalization"], pk["primary_key"], pk["syncs"]) == ("id", "none", True, [])
    assert all(k["null_keys"] == k["duplicate_keys"] == 0 and k["status"] == "ok" for k in (email, pk))
    assert data["exit_code"] == 0


def test_duplicates_under_the_limit_warn_with_the_plans_own_figures(project):
    project.seed(100)
    add_rows(project, (101, " USER1@example.com"), (102, "user2@EXAMPLE.com "), (103, None), (104, ""))
    data, code = check(project)
    assert code == ExitCode.WARNINGS, data
    model, = data["models"]
    email = model["keys"][0]
    assert (model["rows"], model["status"]) == (104, "warning")
    # emails are read as Iterable reads them (trimmed, lowercased); '' counts as NULL
    assert (email["null_keys"], email["duplicate_keys"], email["duplicate_rows"]) == (2, 2, 4)
    assert email["duplicate_pct"] == round(100 * 4 / 104, 3) and email["status"] == "warning"
    assert email["sample"] == [{"key": "user1@example.com", "rows": 2}, {"key": "user2@example.com", "rows": 2}]
    assert model["keys"][1]["status"] == "ok"  # the primary key id is unique
    assert model["messages"] == ["model customers: 4 of 104 rows (3.8%) share 2 duplicated matching keys (email) "
                                 "(e.g. 'user1@example.com', 'user2@example.com'); these rows are withheld by "
                                 "iterable_users (within the 5% limit)"]
    plan = json.loads(project.cli("plan").stdout)["plans"][0]
    assert (plan["segment_rows"], plan["null_keys"], plan["duplicate_keys"], plan["duplicate_rows"]) == (104, 2, 2, 4)
    run = project.sync()["runs"][0]
    assert run["status"] == "warning" and run["acknowledged"] == 98
    assert run["warnings"][0].startswith("model customers: 4 of 104 rows (3.8%) share 2 duplicated matching keys")
    # warnings exit 4 only when the sync says so
    path = project.root / "syncs" / "iterable_users.yml"
    path.write_text(path.read_text() + "  fail_on_warning: false\n")
    assert check(project)[1] == 0


def test_a_plan_of_a_blocked_model_says_the_sync_would_send_nothing(project):
    """`dinsync plan` counted the rows the blocked sync would send (+1 added) and said nothing of the
    block: the sync right after it failed and sent none of them."""
    project.sync()
    add_rows(project, (21, "user21@example.com"), *((100 + i, f"user{i}@example.com") for i in range(1, 5)))
    plan = json.loads(project.cli("plan").stdout)["plans"][0]
    assert (plan["added"], plan["duplicate_keys"]) == (1, 4)
    assert any(n.startswith("the next sync fails before sending anything: model customers is blocked: 8 of 25 rows")
               for n in plan["notes"]), plan["notes"]
    run = project.sync()["runs"][0]
    assert (run["status"], run["sent"]) == ("failed", 0)


def test_over_the_limit_the_model_is_blocked_and_its_other_syncs_do_not_run(project):
    add_rows(project, *((100 + i, f"user{i}@example.com") for i in range(1, 5)))  # 8 of 24 rows: 33%
    (project.root / "syncs" / "iterable_users_b.yml").write_text(
        (project.root / "syncs" / "iterable_users.yml").read_text())
    project.sql("create table main.leads as select id + 1000 as id, 'lead' || id || '@example.com' as email, "
                "first_name, plan, ltv from main.customers where id <= 5")
    (project.root / "models" / "leads.sql").write_text(LEADS_MODEL)
    (project.root / "syncs" / "iterable_leads.yml").write_text(
        (project.root / "syncs" / "iterable_users.yml").read_text().replace("model: customers", "model: leads"))

    data, code = check(project)
    assert code == ExitCode.RUN_FAILED
    customers, leads = data["models"]
    assert (customers["status"], leads["status"]) == ("blocked", "ok")
    assert customers["keys"][0]["blocks"] == ["iterable_users", "iterable_users_b"]
    blocked = ("model customers is blocked: 8 of 24 rows (33.3%) share 4 duplicated matching keys (email) (e.g. "
               "'user1@example.com', 'user2@example.com', 'user3@example.com', 'user4@example.com'), over the 5% "
               "limit of sync iterable_users")
    assert customers["messages"][0].startswith(blocked)
    text = project.cli("check", json_output=False)
    assert text.exit_code == 1 and "customers: blocked, 24 rows" in text.stdout and "leads: ok, 5 rows" in text.stdout

    result = project.sync()
    assert result["exit_code"] == ExitCode.RUN_FAILED
    runs = {r["sync"]: r for r in result["runs"]}
    first, second, other = runs["iterable_leads"], runs["iterable_users"], runs["iterable_users_b"]
    assert first["status"] == "success" and first["acknowledged"] == 5  # another model: it runs
    assert second["status"] == "failed" and second["error"].startswith(blocked) and second["sent"] == 0
    assert "dinsync check --select model:customers" in second["hint"]
    # the model's next sync is not planned again: same message, no run recorded
    assert other["status"] == "failed" and other["run_id"] is None
    assert other["error"].startswith(blocked.replace("limit of sync iterable_users", "limit of sync iterable_users_b"))
    assert project.sql("select count(*) from dinsync.runs where sync = 'iterable_users_b'") == [(0,)]
    assert len(project.sandbox.users) == 5  # only the leads were delivered


def test_a_sync_blocked_by_an_earlier_syncs_figures_reports_the_models_counts(project):
    """The later syncs of a blocked model fail without planning it again: their run object said
    `segment_rows` 0 and `duplicate_keys` 0 while its error named 4 duplicated keys in 24 rows (a job
    alerting on `duplicate_keys` missed them); it now carries the figures the error is about."""
    add_rows(project, *((100 + i, f"user{i}@example.com") for i in range(1, 5)))  # 8 of 24 rows: 33%
    (project.root / "syncs" / "iterable_users_b.yml").write_text(
        (project.root / "syncs" / "iterable_users.yml").read_text())

    result = project.sync()
    assert result["exit_code"] == ExitCode.RUN_FAILED
    first, other = result["runs"]
    assert (first["sync"], other["sync"], other["run_id"]) == ("iterable_users", "iterable_users_b", None)
    counts = ("segment_rows", "null_keys", "duplicate_keys")
    assert {k: other[k] for k in counts} == {k: first[k] for k in counts} == {
        "segment_rows": 24, "null_keys": 0, "duplicate_keys": 4}
    assert other["sent"] == other["added"] == 0


def test_a_declared_primary_key_that_does_not_hold_is_a_warning_only(project):
    add_rows(project, (1, "other1@example.com"), (None, "other2@example.com"))
    data, code = check(project)
    assert code == ExitCode.WARNINGS
    model, = data["models"]
    email, pk = model["keys"]
    assert email["status"] == "ok" and email["duplicate_keys"] == 0
    assert (pk["status"], pk["null_keys"], pk["duplicate_keys"], pk["duplicate_rows"]) == ("warning", 1, 1, 2)
    assert pk["sample"] == [{"key": "1", "rows": 2}] and pk["blocks"] == []
    # (its syncs may match on that very column, normalised: an Attio companies sync on `domain`
    # declared the primary key too; "its syncs match on other keys" was then untrue)
    assert model["messages"] == ["model customers: its declared primary key id does not hold: 1 of 22 rows have a "
                                 "NULL or empty id; 2 of 22 rows (9.1%) share 1 duplicated value (id) (e.g. '1') "
                                 "(syncs withhold rows by their matching keys only: no row is withheld for it)"]
    assert project.sync()["exit_code"] == 0  # the sync matches on email: nothing is withheld


def test_each_message_is_labelled_with_its_own_status_not_the_models(project):
    """A model blocked by its matching key and whose declared primary key does not hold: the
    primary key's message is a warning ("never a block"), though the model is blocked."""
    add_rows(project, *((100 + i, f"user{i}@example.com") for i in range(1, 5)))  # email: 33% duplicated
    add_rows(project, (1, "other1@example.com"))  # id 1 twice
    data, code = check(project)
    assert code == ExitCode.RUN_FAILED and data["models"][0]["message_statuses"] == ["blocked", "warning"]
    lines = [line.strip() for line in project.cli("check", json_output=False).stdout.splitlines()]
    assert any(line.startswith("blocked: model customers is blocked") for line in lines), lines
    assert any(line.startswith("warning: model customers: its declared primary key id") for line in lines), lines


def test_sample_keys_are_cut_and_can_be_left_out(project):
    long_email = "a" * 70 + "@example.com"
    add_rows(project, (201, long_email), (202, long_email))
    data, _ = check(project)
    key = data["models"][0]["keys"][0]["sample"][0]["key"]
    assert len(key) == 60 and key.endswith("…") and long_email.startswith(key[:-1])
    data, _ = check(project, "--samples", "0")
    assert data["models"][0]["keys"][0]["sample"] == [] and data["models"][0]["keys"][0]["duplicate_keys"] == 1


def test_megabyte_keys_are_counted_as_the_plan_counts_them(project, empty_redactor):
    """150 matching keys of 1 MB (and a duplicated one): `dinsync check` ran out of DuckDB's memory
    grouping them (`Out of Memory Error: failed to allocate data of size 128.0 MiB`, exit 1) where
    the plan of the same model, whose statements grow the pool and run again, counted them."""
    project.sql("insert into main.customers select 100 + i, repeat('k', 1000000) || i || '@example.com', "
                "'u', 'x', 'free', 1 from range(150) t(i)")
    add_rows(project, (300, "k" * 1_000_000 + "0@example.com"))
    data, code = check(project)
    assert code == ExitCode.WARNINGS, data
    email = data["models"][0]["keys"][0]
    assert (data["models"][0]["rows"], email["duplicate_keys"], email["duplicate_rows"]) == (171, 1, 2)
    [sample] = email["sample"]
    assert sample["rows"] == 2 and sample["key"].startswith("kkk") and len(sample["key"]) < 1100
    plan = json.loads(project.cli("plan").stdout)["plans"][0]
    assert (plan["segment_rows"], plan["duplicate_keys"], plan["duplicate_rows"]) == (171, 1, 2)
