"""Mistakes a user makes on the command line or in a file, each answered by one clear error with
its documented exit code and a hint (each test fails without its fix)."""
from __future__ import annotations

import json

import duckdb
import pytest
from typer.testing import CliRunner

from dinsync.cli import app
from dinsync.errors import ExitCode


# --- a DuckDB warehouse file that does not exist -------------------------------------------------

@pytest.mark.parametrize("command", [
    ["validate", "--offline"], ["plan"], ["sync"], ["status"], ["runs", "iterable_users"],
    ["rejections", "iterable_users"], ["check"], ["pause", "iterable_users"], ["resume", "iterable_users"],
    ["serve"]])
def test_a_mistyped_duckdb_path_is_an_error_and_no_file_is_created(project, command):
    """`path: warehous.duckdb` (a typo): every command created an empty DuckDB file there; the
    read-only ones then said OK or "no runs", and `sync` would have sent every row again (a new
    file holds no snapshot of what was delivered)."""
    yml = project.root / "dinsync.yml"
    yml.write_text(yml.read_text().replace("path: warehouse.duckdb", "path: warehous.duckdb"))
    result = project.cli(*command, json_output=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR, (command, result.output)
    text = " ".join(result.output.split())
    assert f"dinsync.yml:4: warehouse.path: {project.root / 'warehous.duckdb'} does not exist" in text, text
    assert "hint: fix the path (it is relative to the project folder)" in text, text
    assert not (project.root / "warehous.duckdb").exists()


def test_init_creates_the_warehouse_file_its_project_names_and_keeps_an_existing_one(tmp_path, monkeypatch):
    """The scaffold's next step is `dinsync validate`, which no longer creates the warehouse: init
    does. `init --force` over a project keeps the warehouse (its data and sync state)."""
    runner = CliRunner()
    result = runner.invoke(app, ["init", str(tmp_path / "p")], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"created {tmp_path / 'p' / 'warehouse.duckdb'}" in result.stdout
    monkeypatch.setenv("ITERABLE_API_KEY", "k-123456")
    checked = runner.invoke(app, ["--project-dir", str(tmp_path / "p"), "validate", "--offline"])
    assert checked.exit_code == 0, checked.output
    con = duckdb.connect(str(tmp_path / "p" / "warehouse.duckdb"))
    con.execute("create table precious as select 42 as answer")
    con.close()
    again = runner.invoke(app, ["--json", "init", "--force", str(tmp_path / "p")], catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert not any(p.endswith("warehouse.duckdb") for p in json.loads(again.stdout)["created"])
    con = duckdb.connect(str(tmp_path / "p" / "warehouse.duckdb"))
    assert con.execute("select answer from precious").fetchall() == [(42,)]
    con.close()


# --- selections that name nothing -----------------------------------------------------------------

def test_an_unknown_run_id_is_a_configuration_error_like_an_unknown_sync(project):
    """`rejections SYNC --run ID` with an ID the sync never had exited 2 (a usage error) while
    `rejections NOPE` exits 3: both name something that does not exist (README: a selection that
    selects nothing is a configuration error)."""
    assert project.sync()["exit_code"] == 0
    for args in (["rejections", "iterable_users", "--run", "nope"], ["rejections", "nope"]):
        result = project.cli(*args, json_output=False)
        assert result.exit_code == ExitCode.CONFIG_ERROR, (args, result.output)
    text = " ".join(project.cli("rejections", "iterable_users", "--run", "nope", json_output=False).output.split())
    assert "sync iterable_users has no run 'nope'" in text, text
    assert "hint: `dinsync runs iterable_users` lists its runs and their ids" in text, text
    data = json.loads(project.cli("rejections", "iterable_users", "--run", "nope").stdout)
    assert data["exit_code"] == ExitCode.CONFIG_ERROR
    assert [i["message"] for i in data["issues"]] == ["sync iterable_users has no run 'nope'"]


# --- dinsync sandbox on a port in use -------------------------------------------------------------

@pytest.mark.parametrize("platform", [[], ["attio"]])
def test_sandbox_on_a_port_in_use_says_so_with_a_hint(platform):
    """It exited 1 (`a run failed`) with "cannot listen on 127.0.0.1:N: error while attempting to
    bind on address ('127.0.0.1', N): address already in use", and no way out."""
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(app, ["sandbox", *platform, "--port", str(port)])
    assert result.exit_code == ExitCode.USAGE, result.output
    assert result.output.splitlines() == [
        f"error: port {port} on 127.0.0.1 is in use",
        "hint: pass another --port, or --port 0 to take a free one (the `listening` line names it)"]


# --- a selection typo and an unset secret ---------------------------------------------------------

@pytest.mark.parametrize("command", [["sync", "nope"], ["plan", "--select", "nope"], ["serve", "--select", "nope"]])
def test_a_selection_typo_is_reported_with_an_unset_secret_not_hidden_by_it(project, monkeypatch, command):
    """With ITERABLE_TEST_KEY unset, `dinsync sync nope` reported the variable only; once it was
    exported, the next try said there is no sync 'nope'. The selection needs no credentials."""
    monkeypatch.delenv("ITERABLE_TEST_KEY")
    result = project.cli(*command)
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    messages = [i["message"] for i in json.loads(result.stdout)["issues"]]
    assert messages[0] == "no sync named 'nope'", messages
    assert any("ITERABLE_TEST_KEY is not set" in m for m in messages[1:]), messages
    # a selection that is right: the unset variable alone, as before
    result = project.cli(command[0], "iterable_users")
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    assert ["ITERABLE_TEST_KEY is not set" in i["message"] for i in json.loads(result.stdout)["issues"]] == [True]



@pytest.mark.parametrize("command", [["validate", "--offline"], ["plan"], ["sync"]])
def test_a_key_written_in_the_file_is_reported_when_the_warehouse_cannot_be_reached(project, command):
    """With the rest of the project broken, `validate`, `plan` and `sync` still connect to the
    warehouse (its section alone) to check the model columns too. A warehouse that could not be
    reached then replaced every configuration error by its own: "api_key is a credential written
    in the file" was never said (exit 1, "run again later"), and the next try failed alike."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    yml = project.root / "dinsync.yml"
    text = yml.read_text().replace("api_key: ${env:ITERABLE_TEST_KEY}", "api_key: literal-key-5e6f7a8b")
    text = text.replace("type: duckdb", "type: postgres").replace(
        "path: warehouse.duckdb", f"dsn: postgresql://dinsync@127.0.0.1:{port}/dinsync")
    yml.write_text(text)
    result = project.cli(*command)
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    messages = [i["message"] for i in json.loads(result.stdout)["issues"]]
    assert "destinations.iterable.api_key is a credential written in the file" in messages, messages
    assert "literal-key" not in result.output


@pytest.mark.parametrize("command", ["sync", "plan"])
def test_a_sync_runs_without_the_secret_of_a_destination_only_other_syncs_use(project, monkeypatch, command):
    """A project sending to Iterable and Attio, run by a job holding the Iterable key only: `dinsync
    sync iterable_users` refused (exit 3) because ATTIO_KEY_OF_ANOTHER_JOB was not set, a key that
    sync never uses (as a model only other syncs read does not stop it). A sync that does use it
    still needs it."""
    monkeypatch.delenv("ATTIO_KEY_OF_ANOTHER_JOB", raising=False)
    with open(project.root / "dinsync.yml", "a") as f:
        f.write("  attio:\n    type: attio\n    api_key: ${env:ATTIO_KEY_OF_ANOTHER_JOB}\n")
    (project.root / "syncs" / "attio_people.yml").write_text(
        "model: customers\ndestination: attio\nservice: people\nmode: upsert\n"
        "match: {column: email, field: email_addresses}\nfields: {first_name: name}\n")
    result = project.cli(command, "iterable_users")
    assert result.exit_code == 0, result.output
    result = project.cli(command, "attio_people")
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    messages = [i["message"] for i in json.loads(result.stdout)["issues"]]
    assert any("ATTIO_KEY_OF_ANOTHER_JOB is not set" in m for m in messages), messages


# --- counts out of range ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [["plan", "--samples"], ["check", "--samples"], ["rejections", "--limit"],
                                     ["runs", "--limit"], ["status", "--limit"]])
def test_a_sample_count_no_query_can_take_is_a_usage_error(project, command):
    """`plan --samples 100000000000000000000` reached DuckDB as a LIMIT and failed the command with
    a conversion error (exit 1, "run again later"), and so did `rejections --limit` of such a count
    (even of 2**63: 'Type UINT64 ... out of range for the destination type INT64'): a count the
    option cannot take is the user's typo (exit 2), and a large one that fits shows every row it can."""
    project.sql("insert into main.customers values (21, 'user1@example.com', 'u-21', 'Again', 'free', 1.0)")
    if command[0] in ("rejections", "runs", "status"):
        project.cli("sync")  # (the duplicated key is listed in rejections)
    result = project.cli(*command, str(10**20), json_output=False)
    assert result.exit_code == ExitCode.USAGE, (command, result.output)
    text = " ".join(result.output.replace("│", " ").split())
    assert f"Invalid value for '{command[1]}'" in text and "1000000000" in text, text
    # as with the default count (`check` fails on the duplicated key either way)
    assert project.cli(*command, "1000000", json_output=False).exit_code == project.cli(command[0]).exit_code


# --- a model reading a file that is not there -------------------------------------------------------

@pytest.mark.parametrize("command", [["validate", "--offline"], ["plan"], ["sync"], ["check"]])
def test_a_model_reading_a_missing_file_is_a_configuration_error_at_the_model(project, command):
    """The scaffold's model reads `read_csv('seeds/customers.csv')`; with the file moved or its name
    mistyped, DuckDB's "No files found that match the pattern" read as a warehouse that "could not
    be reached or timed out; run again later" (exit 1), naming no file: nothing to retry, the model
    must be fixed, as for a table that does not exist."""
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\nselect * from read_csv('seeds/nope.csv')\n")
    result = project.cli(*command, json_output=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR, (command, result.output)
    text = " ".join(result.output.split())
    assert "models/customers.sql:3: model customers failed in the warehouse: DuckDB: IO Error: No files found " \
           'that match the pattern "seeds/nope.csv"' in text, text
    assert "run again later" not in text, text
    assert project.requests.requests == []


# --- a model whose rows fail ----------------------------------------------------------------------

def test_a_value_error_in_the_models_rows_names_the_model_on_duckdb(project):
    """A seed CSV with `n/a` in a number column beyond the rows DuckDB samples for the types: its
    error names no line of the model, and the run failed with "DuckDB: Conversion Error: CSV Error
    on Line: ... (while running a statement)", saying neither that it was the model nor which
    (PostgreSQL's data errors name the model: tests/warehouses/test_pg_model_errors.py)."""
    rows = [f"{i},user{i}@example.com,{i}.5" for i in range(1, 25_001)] + ["25001,last@example.com,n/a"]
    (project.root / "people.csv").write_text("id,email,ltv\n" + "\n".join(rows) + "\n")
    (project.root / "models" / "customers.sql").write_text(
        "-- primary_key: id\n-- model_type: user\n"
        "select id, email, 'u' || id as user_id, 'N' as first_name, 'free' as plan, ltv from read_csv('people.csv')\n")
    result = project.sync()
    assert result["exit_code"] == ExitCode.RUN_FAILED, result
    [run] = result["runs"]
    assert run["error"].startswith("models/customers.sql: model customers failed in the warehouse on a value of "
                                   "its rows: DuckDB: Conversion Error: CSV Error on Line"), run["error"]
    assert run["hint"] == "run the model's SQL in the warehouse to debug it"
    assert project.requests.requests == []


# --- an empty folder argument ("$DIR" with DIR unset) ---------------------------------------------

@pytest.mark.parametrize("args", [["init", ""], ["init", "", "--force"], ["demo", "--path", "", "--force"],
                                  ["--project-dir", "", "status"], ["status", "-p", ""]])
def test_an_empty_folder_argument_is_a_usage_error_not_the_current_folder(tmp_path, monkeypatch, args):
    """`dinsync init "$DIR" --force` or `dinsync demo --path "$DIR" --force` with DIR unset took ""
    for the current folder: init overwrote its README.md and .gitignore, the demo deleted its
    warehouse.duckdb and wrote its dinsync.yml over the user's; `-p "$PROJECT"` ran the project found
    here. An empty folder name is a usage error (exit 2), like an empty --select; `.` names this one."""
    monkeypatch.chdir(tmp_path)
    mine = {"README.md": "my notes\n", ".gitignore": "secret.txt\n", "dinsync.yml": "version: 1\n"}
    for name, text in mine.items():
        (tmp_path / name).write_text(text)
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    con.execute("create table precious as select 42 as answer")
    con.close()
    result = CliRunner().invoke(app, args)
    assert result.exit_code == ExitCode.USAGE, (args, result.output)
    assert "is empty" in " ".join(result.output.split()), result.output
    assert {name: (tmp_path / name).read_text() for name in mine} == mine
    assert sorted(p.name for p in tmp_path.iterdir()) == [".gitignore", "README.md", "dinsync.yml", "warehouse.duckdb"]
    con = duckdb.connect(str(tmp_path / "warehouse.duckdb"))
    assert con.execute("select answer from precious").fetchall() == [(42,)]
    con.close()
