"""Regression tests for the CLI defects of issue 11 (each fails without its fix)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from typer.testing import CliRunner

from dinsync.cli import app
from dinsync.errors import ExitCode
from dinsync.sandbox.faults import respond
from tests.conftest import TEST_KEY

DRIVER = Path(__file__).with_name("debug_leak_driver.py")
SYNC_YML = """\
model: customers
destination: {destination}
service: users
mode: upsert
match: {{column: email, field: email}}
fields: {{first_name: firstName, plan: plan}}
thresholds: {{max_rejected_pct: {max_rejected_pct}, fail_on_warning: true}}
enabled: {enabled}
"""


def write_sync(project, name, destination="iterable", max_rejected_pct=50, enabled="true"):
    (project.root / "syncs" / f"{name}.yml").write_text(SYNC_YML.format(
        destination=destination, max_rejected_pct=max_rejected_pct, enabled=enabled))


# --- demo ----------------------------------------------------------------------------------------

def demo(tmp_path, *args):
    return CliRunner().invoke(app, ["demo", "--path", str(tmp_path / "d"), "--rows", "60", *args],
                              catch_exceptions=False)


def test_demo_refuses_a_project_folder_unless_forced(tmp_path):
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(tmp_path / "d")]).exit_code == 0
    con = duckdb.connect(str(tmp_path / "d" / "warehouse.duckdb"))
    con.execute("create table precious as select 42 as answer")
    con.close()
    before = {p: p.read_bytes() for p in (tmp_path / "d").rglob("*") if p.is_file()}
    result = demo(tmp_path)
    assert result.exit_code == ExitCode.USAGE
    assert "holds files the demo did not create" in result.stderr and "--force" in result.stderr
    assert {p: p.read_bytes() for p in (tmp_path / "d").rglob("*") if p.is_file()} == before
    forced = demo(tmp_path, "--force")
    assert forced.exit_code == 0, forced.output
    assert "models/active_customers.sql" in (tmp_path / "d" / ".dinsync-demo.json").read_text()


def test_demo_runs_again_in_its_own_folder_but_not_once_it_was_edited(tmp_path):
    assert demo(tmp_path).exit_code == 0
    assert demo(tmp_path).exit_code == 0  # its own folder: marker and unchanged files
    (tmp_path / "d" / "syncs" / "mine.yml").write_text("model: x\n")
    refused = demo(tmp_path)
    assert refused.exit_code == ExitCode.USAGE and "syncs/mine.yml" in refused.stderr
    (tmp_path / "d" / "syncs" / "mine.yml").unlink()
    with open(tmp_path / "d" / "models" / "active_customers.sql", "a") as f:
        f.write("-- my edit\n")
    refused = demo(tmp_path)
    assert refused.exit_code == ExitCode.USAGE and "changed since the demo wrote it" in refused.stderr
    assert "-- my edit" in (tmp_path / "d" / "models" / "active_customers.sql").read_text()


def test_demo_force_replaces_links_and_leaves_the_files_they_point_to(tmp_path):
    """`demo --force` over a folder whose dinsync.yml is a symbolic link wrote the demo's file
    through the link, over the user's file outside the folder (and the Attio step's own check then
    refused its link after the Iterable step had run: exit 1, half a demo). --force replaces the
    folder's entries, never a file outside it."""
    (tmp_path / "d" / "attio").mkdir(parents=True)
    for rel, target in (("dinsync.yml", "shared.yml"), ("attio/dinsync.yml", "shared_attio.yml")):
        (tmp_path / target).write_text("mine: 1\n")
        (tmp_path / "d" / rel).symlink_to(tmp_path / target)
    result = demo(tmp_path, "--force")
    assert result.exit_code == 0, result.output
    for rel, target in (("dinsync.yml", "shared.yml"), ("attio/dinsync.yml", "shared_attio.yml")):
        assert (tmp_path / target).read_text() == "mine: 1\n", rel
        assert not (tmp_path / "d" / rel).is_symlink() and "duckdb" in (tmp_path / "d" / rel).read_text()


def test_demo_force_overwrites_a_file_of_the_attio_step_as_it_says(tmp_path):
    """The demo's hint offers --force "to overwrite them"; an attio/dinsync.yml of the user's was
    let through by --force, then refused by the Attio step after the Iterable step had run: exit 1
    ("not overwriting it"), the demo half done."""
    (tmp_path / "d" / "attio").mkdir(parents=True)
    (tmp_path / "d" / "attio" / "dinsync.yml").write_text("version: 1\n")
    assert demo(tmp_path).exit_code == ExitCode.USAGE
    result = demo(tmp_path, "--force")
    assert result.exit_code == 0, result.output
    assert "attio/dinsync.yml" in (tmp_path / "d" / ".dinsync-demo.json").read_text()


@pytest.mark.parametrize("in_the_way", ["warehouse.duckdb/", "models", "attio/models", "attio/dinsync.yml/"])
def test_demo_force_refuses_a_folder_where_its_file_goes_and_a_file_where_its_folder_goes(tmp_path, in_the_way):
    """--force let them through: "unexpected error: IsADirectoryError" (a folder named
    warehouse.duckdb) or "FileExistsError" (a file named attio/models) after the Iterable step had
    run, exit 1. As `init` does, the demo never replaces one by the other, and says so first."""
    entry = tmp_path / "d" / in_the_way.rstrip("/")
    entry.parent.mkdir(parents=True, exist_ok=True)
    if in_the_way.endswith("/"):
        entry.mkdir()
    else:
        entry.write_text("mine\n")
    result = demo(tmp_path, "--force")
    assert result.exit_code == ExitCode.USAGE, result.output
    assert in_the_way.rstrip("/") in result.stderr and "unexpected error" not in result.stderr, result.stderr
    assert not (tmp_path / "d" / "dinsync.yml").exists()  # refused before anything was written
    assert entry.is_dir() == in_the_way.endswith("/")


@pytest.mark.parametrize("force", [[], ["--force"]])
def test_demo_refuses_a_file_as_its_folder(tmp_path, force):
    (tmp_path / "d").write_text("mine\n")
    result = demo(tmp_path, *force)
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "is a file, not a folder" in result.stderr
    assert (tmp_path / "d").read_text() == "mine\n"


def test_demo_names_what_it_finds_in_a_folder_without_its_marker(tmp_path):
    (tmp_path / "d").mkdir()
    con = duckdb.connect(str(tmp_path / "d" / "warehouse.duckdb"))
    con.execute("create table precious as select 42 as answer")
    con.close()
    result = demo(tmp_path)
    assert result.exit_code == ExitCode.USAGE
    assert "warehouse.duckdb (no demo marker)" in result.stderr


def test_demo_prints_each_rejection_once_and_its_notes(tmp_path):
    result = demo(tmp_path)
    assert result.exit_code == 0, result.output
    assert result.stdout.count("rejected 'not-an-email'") == 1
    assert "1 row with a NULL matching key was skipped" in result.stderr


# --- secrets in debug output ---------------------------------------------------------------------

def test_debug_traceback_never_shows_the_key(project):
    """A destination whose key check answers 401 with a body echoing the key; the destination
    raises a plain exception quoting that body; with DINSYNC_DEBUG=1 the CLI prints the chain."""
    project.thread.script("getFields", respond(401, {"msg": f"Invalid API key {TEST_KEY}", "code": "BadApiKey",
                                                     "params": None}), times=10)
    env = dict(os.environ, DINSYNC_DEBUG="1")
    for extra in ([], ["--json"]):
        proc = subprocess.run([sys.executable, str(DRIVER), "-p", str(project.root), *extra, "sync"], env=env,
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == ExitCode.RUN_FAILED, proc.stderr
        assert "Traceback (most recent call last)" in proc.stderr and "key check refused: HTTP 401" in proc.stderr
        assert "Invalid API key ***" in proc.stderr
        assert TEST_KEY not in proc.stdout + proc.stderr


# --- ${env:} in the warehouse of a broken project ------------------------------------------------

BROKEN_SYNC = ("model: customers\ndestination: iterable\nservice: users\nmode: upsert\n"
               "match: {column: email, field: email}\nfields:\n  no_such_column: x\nextra_key: 1\n")


def test_broken_project_checks_columns_in_the_env_substituted_warehouse(project, monkeypatch):
    yml = project.root / "dinsync.yml"
    yml.write_text(yml.read_text().replace("path: warehouse.duckdb", "path: ${env:WH_PATH}"))
    monkeypatch.setenv("WH_PATH", str(project.root / "warehouse.duckdb"))
    (project.root / "syncs" / "iterable_users.yml").write_text(BROKEN_SYNC)
    result = project.cli("validate")
    assert result.exit_code == ExitCode.CONFIG_ERROR
    messages = [i["message"] for i in json.loads(result.stdout)["issues"]]
    assert any("extra_key" in m for m in messages)
    assert "column 'no_such_column' is not a column of model customers" in messages  # the real warehouse
    assert not any("failed in the warehouse" in m for m in messages), messages
    assert sorted(p.name for p in project.root.iterdir()) == ["dinsync.yml", "models", "syncs", "warehouse.duckdb"]


def test_validating_a_broken_project_creates_no_warehouse(project, monkeypatch):
    (project.root / "syncs" / "iterable_users.yml").write_text(BROKEN_SYNC)
    yml = project.root / "dinsync.yml"
    yml.write_text(yml.read_text().replace("path: warehouse.duckdb", "path: elsewhere.duckdb"))
    assert project.cli("validate").exit_code == ExitCode.CONFIG_ERROR
    assert not (project.root / "elsewhere.duckdb").exists()
    yml.write_text(yml.read_text().replace("path: elsewhere.duckdb", "path: ${env:WH_PATH}"))
    monkeypatch.setenv("WH_PATH", str(project.root / "absent.duckdb"))
    assert project.cli("sync").exit_code == ExitCode.CONFIG_ERROR
    assert not (project.root / "absent.duckdb").exists()
    assert not any("env:" in p.name for p in project.root.iterdir())


# --- exit codes, disabled syncs, notes -----------------------------------------------------------

def test_a_failed_run_outranks_warnings_whatever_the_order(project, monkeypatch):
    yml = project.root / "dinsync.yml"
    yml.write_text(yml.read_text() + f"  iterable_bad:\n    type: iterable\n    api_key: ${{env:WRONG_KEY}}\n"
                                     f"    base_url: {project.base_url}\n")
    monkeypatch.setenv("WRONG_KEY", "wrong-key-4c1e9b2d")
    (project.root / "syncs" / "iterable_users.yml").unlink()
    write_sync(project, "a_warns", max_rejected_pct=0)  # its rejected row makes it a warning
    write_sync(project, "b_fails", destination="iterable_bad")  # 401: credentials refused
    project.sql("insert into main.customers values (99, 'not an email', 'u-99', 'x', 'free', 1)")
    data = project.sync()
    assert [(r["sync"], r["status"]) for r in data["runs"]] == [("a_warns", "warning"), ("b_fails", "failed")]
    assert data["exit_code"] == ExitCode.RUN_FAILED
    assert project.last.exit_code == ExitCode.RUN_FAILED


def test_a_named_disabled_sync_runs_with_a_note_a_glob_never_selects_it(project):
    write_sync(project, "iterable_paused", enabled="false")
    assert [r["sync"] for r in project.sync()["runs"]] == ["iterable_users"]
    assert [r["sync"] for r in project.sync("iterable_*")["runs"]] == ["iterable_users"]
    named = project.sync("iterable_paused")
    assert [r["sync"] for r in named["runs"]] == ["iterable_paused"] and named["exit_code"] == 0
    assert "sync iterable_paused is disabled (enabled: false); running it because it was named" in project.last.stderr


def test_null_key_note_is_printed(project):
    project.sql("insert into main.customers values (50, NULL, 'u-50', 'no key', 'free', 1)")
    text = project.cli("sync", json_output=False)
    assert text.exit_code == 0
    assert "iterable_users: note: 1 row with a NULL matching key was skipped" in text.stderr
    project.sql("insert into main.customers values (51, NULL, 'u-51', 'no key', 'free', 1)")
    as_json = project.cli("sync")
    assert "2 rows with a NULL matching key were skipped" in as_json.stderr
    assert json.loads(as_json.stdout)["runs"][0]["null_keys"] == 2


def test_a_tuning_variable_that_is_not_a_number_is_a_configuration_error(project, monkeypatch):
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "ten")
    data = project.sync()
    assert data["exit_code"] == ExitCode.CONFIG_ERROR
    [run] = data["runs"]
    assert run["sent"] == 0 and "unexpected" not in run["error"]
    assert [(i["message"], i["hint"]) for i in run["issues"]] == [(
        "environment variable DINSYNC_OUTCOME_TIMEOUT_SECONDS must be a number, got 'ten'",
        "set DINSYNC_OUTCOME_TIMEOUT_SECONDS to a number, or unset it for the default (600)")]
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "60")
    monkeypatch.setenv("DINSYNC_CHECKPOINT_ROWS", "1.5")
    data = project.sync()
    assert data["exit_code"] == ExitCode.CONFIG_ERROR
    assert "DINSYNC_CHECKPOINT_ROWS must be a whole number, got '1.5'" in data["runs"][0]["issues"][0]["message"]


@pytest.mark.parametrize("value", ["five", "-1", "nan", "inf"])
def test_an_unusable_progress_interval_is_a_configuration_error(project, monkeypatch, value):
    monkeypatch.setenv("DINSYNC_PROGRESS_SECONDS", value)
    text = project.cli("sync", json_output=False)
    assert text.exit_code == ExitCode.CONFIG_ERROR
    assert f"environment variable DINSYNC_PROGRESS_SECONDS must be a number of seconds (0 or more), got {value!r}" \
        in text.stderr
    assert project.requests.requests == []  # stopped before any run: nothing sent, no state made
    assert project.cli("serve", json_output=False).exit_code == ExitCode.CONFIG_ERROR  # (before it serves)
    monkeypatch.setenv("DINSYNC_PROGRESS_SECONDS", "0.5")
    assert project.cli("sync", json_output=False).exit_code == 0



@pytest.mark.parametrize("value", ["-1", "soon"])
def test_an_unusable_outage_seconds_is_a_configuration_error_before_the_run_and_pauses_nothing(project, monkeypatch,
                                                                                                 value):
    """DINSYNC_OUTAGE_SECONDS was read once the run sent (by the sender's breaker): a value it cannot
    take failed the run after planning, and the automatic pause's check, reading it again, blamed the
    destination: the sync paused itself (culprit `destination`) for a setting of the environment.
    It is read as the run starts, with the run's other knobs: exit 3, nothing sent, nothing paused."""
    monkeypatch.setenv("DINSYNC_OUTAGE_SECONDS", value)
    data = project.sync()
    assert data["exit_code"] == ExitCode.CONFIG_ERROR, data
    [run] = data["runs"]
    assert run["sent"] == 0 and run["run_id"] is None, run
    assert "environment variable DINSYNC_OUTAGE_SECONDS must be a number of seconds above 0, got " \
        f"{value!r}" in run["issues"][0]["message"], run
    assert project.requests.requests == []
    [state] = json.loads(project.cli("status").stdout)["syncs"]
    assert (state["paused"], state["culprit"]) == (False, None), state
    monkeypatch.setenv("DINSYNC_OUTAGE_SECONDS", "30")
    again = project.sync()
    assert again["exit_code"] == 0 and again["runs"][0]["acknowledged"] == 20, again

# --- model SQL -----------------------------------------------------------------------------------

def test_a_model_whose_last_line_ends_in_a_comment_validates_and_syncs(project):
    """`where active  -- only active ones` as a model's last line: DuckDB's columns query put the
    model inline, `SELECT * FROM (<model>) AS _q LIMIT 0`, so the comment swallowed the closing
    parenthesis and every command refused the model as a syntax error (exit 3)."""
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\n"
        "select id, email, user_id, first_name, plan, ltv\nfrom main.customers\nwhere id > 0  -- every customer\n")
    validated = project.cli("validate", "--offline")
    assert validated.exit_code == 0, validated.output
    data = project.sync()
    assert data["exit_code"] == 0, data
    assert data["runs"][0]["acknowledged"] == 20


def test_a_syntax_error_in_a_model_names_the_files_line(project):
    """The warehouse numbers the lines of the query it was sent, which starts after the model's
    header comments: `fro main.customers` on line 5 of the file was reported at the model's first
    line (3) with "LINE 3:" in the message."""
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\n"
        "select id, email, user_id,\n  first_name, plan, ltv\nfro main.customers\n")
    result = project.cli("validate", "--offline", json_output=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    text = " ".join(result.output.split())
    assert "models/customers.sql:5: model customers failed in the warehouse" in text, text
    assert "line 5: fro main.customers" in text and "LINE 3" not in text, text


# --- notification channels' variables --------------------------------------------------------------

def test_commands_that_notify_nobody_run_without_the_channels_variables(project, monkeypatch):
    """A monitor without the Slack webhook's variable reads status, runs, rejections and the key
    check, as it may without the destinations' keys; they refused with exit 3 ("environment variable
    SLACK_WEBHOOK is not set"). Commands that notify (pause, resume, sync) still need it."""
    with (project.root / "dinsync.yml").open("a") as f:
        f.write("notifications:\n  - type: slack\n    webhook_url: ${env:SLACK_WEBHOOK}\n"
                "  - type: webhook\n    url: https://alerts.example.com/dinsync\n"
                "    headers: {Authorization: '${env:ALERT_TOKEN}'}\n")
    monkeypatch.delenv("SLACK_WEBHOOK", raising=False)
    monkeypatch.delenv("ALERT_TOKEN", raising=False)
    for command in (["status"], ["runs", "iterable_users"], ["rejections", "iterable_users"], ["check"]):
        result = project.cli(*command)
        assert result.exit_code == 0, (command, result.output)
    paused = project.cli("pause", "iterable_users", json_output=False)
    assert paused.exit_code == ExitCode.CONFIG_ERROR
    assert "SLACK_WEBHOOK is not set" in paused.output and "ALERT_TOKEN is not set" in paused.output
    import dinsync
    assert dinsync.load_project(project.root).status().exit_code == 0


def test_a_duckdb_path_in_a_folder_that_does_not_exist_is_located_in_dinsync_yml(project):
    """`path: data/warehouse.duckdb` without a data/ folder: every command failed with exit 1 and
    "cannot open DuckDB file ...: IO Error: Cannot open file ...: No such file or directory", no
    line and no hint (DuckDB creates its file, not the folder)."""
    yml = project.root / "dinsync.yml"
    yml.write_text(yml.read_text().replace("path: warehouse.duckdb", "path: data/warehouse.duckdb"))
    for command in (["validate", "--offline"], ["sync"], ["status"]):
        result = project.cli(*command, json_output=False)
        assert result.exit_code == ExitCode.CONFIG_ERROR, (command, result.output)
        text = " ".join(result.output.split())
        assert f"dinsync.yml:4: warehouse.path: folder {project.root / 'data'} does not exist" in text, text
        assert "hint: create the folder" in text
    assert not (project.root / "data").exists()
    (project.root / "data").mkdir()  # a folder where the file goes: "IO Error: ... Is a directory", exit 1
    yml.write_text(yml.read_text().replace("path: data/warehouse.duckdb", "path: data"))
    result = project.cli("status", json_output=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    text = " ".join(result.output.split())
    assert f"dinsync.yml:4: warehouse.path: {project.root / 'data'} is a folder, not a DuckDB file" in text, text
    assert "hint: name a file, e.g. data/warehouse.duckdb" in text, text


def test_a_project_file_named_dinsync_yaml_is_named_in_the_hint(project):
    """Sync files may end in .yaml, the project file may not: a user with dinsync.yaml was told
    "run `dinsync init`" (which would scaffold a second project over theirs). The loader's own hint
    (rename it) never showed: the CLI and the API stopped before the loader."""
    (project.root / "dinsync.yml").rename(project.root / "dinsync.yaml")
    result = project.cli("status", json_output=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    assert "rename dinsync.yaml to dinsync.yml" in " ".join(result.output.split()), result.output
    import dinsync
    with pytest.raises(dinsync.ConfigError, match="rename dinsync.yaml to dinsync.yml"):
        dinsync.load_project(project.root)


def test_a_project_file_that_is_a_folder_or_a_folder_that_does_not_exist_is_named(project, tmp_path):
    """`dinsync.yml` made a folder (a `mkdir` or a volume mount gone wrong) was reported as "no
    dinsync.yml", with the hint to run `dinsync init`; so was a --project-dir that does not exist."""
    (project.root / "dinsync.yml").unlink()
    (project.root / "dinsync.yml").mkdir()
    result = project.cli("status", json_output=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    text = " ".join(result.output.split())
    assert f"{project.root / 'dinsync.yml'} is a folder, not a file" in text and "dinsync init" not in text, text
    missing = tmp_path / "no_such_folder"
    result = project.runner.invoke(app, ["status", "-p", str(missing)])
    assert result.exit_code == ExitCode.CONFIG_ERROR
    text = " ".join(result.output.split())
    assert f"folder {missing} does not exist" in text and "dinsync init" not in text, text
    import dinsync
    with pytest.raises(dinsync.ConfigError, match="is a folder, not a file"):
        dinsync.load_project(project.root)

def test_the_api_names_load_project_in_its_hint_for_a_folder_that_does_not_exist(tmp_path):
    """`dinsync.load_project("no_such_folder")` hinted "pass the project folder the folder that holds
    dinsync.yml": the CLI's sentence with its option replaced by words that do not read."""
    import dinsync

    missing = tmp_path / "no_such_folder"
    with pytest.raises(dinsync.ConfigError) as caught:
        dinsync.load_project(missing)
    assert [i.hint for i in caught.value.issues] == [
        f"the folder {missing} does not exist: pass load_project() the folder that holds dinsync.yml"]


def test_a_model_failing_on_its_rows_names_the_files_line(project):
    """A cast that fails on a row passes the columns check (LIMIT 0) and fails while the plan
    runs: `plan` and `sync` said "DuckDB: Conversion Error ... LINE 28: cast(first_name as integer)"
    (a line of the plan's statement), naming neither the model's file nor its line, with no hint."""
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\n"
        "select id, email, user_id,\n  cast(first_name as integer) as first_name,\n  plan, ltv\nfrom main.customers\n")
    assert project.cli("validate", "--offline").exit_code == 0
    for command in ("plan", "sync"):
        result = project.cli(command, json_output=False)
        assert result.exit_code == ExitCode.RUN_FAILED, result.output
        text = " ".join(result.output.split())
        assert "models/customers.sql:4: model customers failed in the warehouse:" in text, text
        assert "line 4: cast(first_name as integer)" in text and "LINE " not in text, text
        assert "hint: run the model's SQL in the warehouse to debug it" in text, text
    run = json.loads(project.cli("runs", "iterable_users").stdout)["runs"][0]
    assert run["error"].startswith("models/customers.sql:4: model customers failed in the warehouse:")


def test_dinsync_check_names_the_line_of_a_key_that_fails_on_its_rows(project):
    """`dinsync check` counts the keys in the warehouse: a key expression that fails on a row was
    reported as "DuckDB: Conversion Error ... LINE 24: ..." (a line of the count statement)."""
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\n"
        "select id,\n  cast(email as integer)::varchar as email,\n  user_id, first_name, plan, ltv\nfrom main.customers\n")
    result = project.cli("check", json_output=False)
    assert result.exit_code == ExitCode.RUN_FAILED, result.output
    text = " ".join(result.output.split())
    assert "models/customers.sql:4: model customers failed in the warehouse:" in text, text
    assert "line 4: cast(email as integer)" in text and "LINE " not in text, text


def test_a_model_file_not_ending_in_sql_is_named_in_the_hint(project):
    """models/customers.SQL (or .sql.txt) is not read: the sync's model was "unknown" with the
    hint "no models defined", while the file is right there."""
    (project.root / "models" / "customers.sql").rename(project.root / "models" / "customers.SQL")
    result = project.cli("validate", "--offline", json_output=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    text = " ".join(result.output.split())
    assert "unknown model 'customers' (hint: models/customers.SQL is not read: a model's file name ends in .sql)" \
        in text, text


def test_a_command_run_from_a_folder_inside_the_project_names_the_project(project, monkeypatch):
    """Run from models/: the hint said "run `dinsync init` or pass --project-dir", and `dinsync
    init` there scaffolds a second project inside the first."""
    monkeypatch.chdir(project.root / "models")
    result = project.runner.invoke(app, ["status"], catch_exceptions=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    text = " ".join(result.output.split())
    assert f"the project is {project.root}: run dinsync there, or pass --project-dir {project.root}" in text, text
    assert "dinsync init" not in text



@pytest.mark.parametrize("written", ["${ENV:ITERABLE_TEST_KEY}", "${ITERABLE_TEST_KEY}", "${env:ITERABLE_TEST_KEY"])
def test_a_mistyped_environment_reference_is_named_as_such(project, written):
    """`${ENV:KEY}`, `${KEY}` or a missing brace is not `${env:KEY}`: the value was taken as the
    text written in the file, and the user was told "api_key is a credential written in the file"
    (the hint then shows the right form only by chance)."""
    yml = project.root / "dinsync.yml"
    yml.write_text(yml.read_text().replace("${env:ITERABLE_TEST_KEY}", f'"{written}"'))
    result = project.cli("validate", "--offline", json_output=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    text = " ".join(result.output.split())
    assert f"invalid environment reference '{written}' in destinations.iterable.api_key" in text, text
    assert "credential written in the file" not in text and "hint: write ${env:NAME}" in text, text


def test_a_model_naming_a_column_its_table_lacks_is_reported_at_that_line_on_duckdb(project):
    """`firstname` (a typo of first_name) on line 5 of a model: DuckDB's binder error, read through
    its lazy relation, carries no `LINE n`, so `validate` named the model's first SQL line (3), not
    the line to fix."""
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect\n  id, email, user_id,\n  firstname,\n  plan, ltv\n"
        "from main.customers\n")
    result = project.cli("validate", "--offline", json_output=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    text = " ".join(result.output.split())
    assert 'models/customers.sql:5: model customers failed in the warehouse: DuckDB: Binder Error: Referenced ' \
           'column "firstname" not found' in text, text
    assert "line 5: firstname," in text, text


def test_a_model_that_is_not_a_select_says_so(project):
    """A model holding `drop table ...` (or an INSERT, a CREATE) was reported as "failed in the
    warehouse: Parser Error: syntax error at or near "table"" (it is read as a subquery)."""
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\n\ncreate table customers2 as select * from main.customers\n")
    result = project.cli("validate", "--offline", json_output=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    text = " ".join(result.output.split())
    assert "models/customers.sql:4: a model is a SELECT query, not a CREATE statement" in text, text
    assert "syntax error" not in text
