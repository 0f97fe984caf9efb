"""The CLI commands a new user meets first: demo, init, validate, sandbox, usage errors."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess

import pytest
import sys
import urllib.request

from typer.testing import CliRunner

from dinsync.cli import app
from dinsync.errors import ExitCode
from tests.conftest import TEST_KEY


def test_demo_runs_offline_and_only_changes_travel_the_second_time(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["--json", "demo", "--path", "demo", "--rows", "400"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    first, second = report["runs"]
    assert first["added"] == 401 and first["acknowledged"] == 400 and first["rejected"] == 1  # 1 bad email
    assert second["changed"] == 8 and second["removed"] == 2 and second["acknowledged"] == 33
    assert report["sandbox_users"] == 425
    attio = {(r["step"], r["sync"]): r for r in report["attio"]["runs"]}  # the Attio step, in demo/attio
    assert attio[("first sync", "attio_people")]["acknowledged"] == 50
    assert attio[("after changes", "attio_people")]["rejected"] == 1  # a plan Attio does not know
    assert report["attio"]["sandbox"]["records"] == {"people": 50, "companies": 5}
    # the tour names the skipped row as such, not as a rejection of the key None
    told = CliRunner().invoke(app, ["demo", "--path", "demo", "--rows", "50"], catch_exceptions=False)
    assert told.exit_code == 0, told.output
    assert "rejected None" not in told.output and "   skipped: 1 row of model active_customers" in told.output
    # the demo knows its folder again (the Attio step's files included), but never a file edited since
    assert CliRunner().invoke(app, ["--json", "demo", "--path", "demo", "--rows", "50"]).exit_code == 0
    (tmp_path / "demo" / "attio" / "models" / "people.sql").write_text("select 1 as id\n")
    refused = CliRunner().invoke(app, ["demo", "--path", "demo"])
    assert refused.exit_code == ExitCode.USAGE and "attio/models/people.sql (changed" in refused.output


def test_demo_try_it_yourself_hint_fills_a_new_sandbox(tmp_path, monkeypatch, iterable_sandbox):
    """The demo ends with "Try it yourself": point base_url at a new (empty) sandbox and run the
    command it names. That command must deliver the demo's customers there (the snapshot holds the
    demo's syncs: it named `sync --full-refresh` while dinsync did not notice a new base_url; a plain
    `sync` does, since 2026-12-07, and says so)."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DINSYNC_DEMO_ITERABLE_KEY", raising=False)
    result = CliRunner().invoke(app, ["demo", "--path", "demo", "--rows", "60"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    hint = re.search(r"`dinsync --project-dir (\S+) plan[^`]*` / `(sync[^`]*)`", text)
    assert hint, text
    project_dir, sync_args = hint.group(1), hint.group(2).split()
    sandbox, runner = iterable_sandbox
    yml = tmp_path / "demo" / "dinsync.yml"
    yml.write_text(re.sub(r"base_url: http://127\.0\.0\.1:\d+", f"base_url: {runner.url}", yml.read_text()))
    monkeypatch.setenv("DINSYNC_DEMO_ITERABLE_KEY", TEST_KEY)
    synced = CliRunner().invoke(app, ["--json", "--project-dir", project_dir, *sync_args], catch_exceptions=False)
    assert synced.exit_code == 0, synced.output
    run = json.loads(synced.stdout)["runs"][0]
    assert run["acknowledged"] >= 55 and len(sandbox.users) == run["acknowledged"]  # every customer, not 0
    assert sync_args == ["sync"] and "now reaches" in synced.output


def test_init_scaffolds_a_project_that_validates(tmp_path, monkeypatch):
    runner = CliRunner()
    result = runner.invoke(app, ["init", str(tmp_path / "proj")], catch_exceptions=False)
    assert result.exit_code == 0
    assert (tmp_path / "proj" / "dinsync.yml").is_file()
    monkeypatch.setenv("ITERABLE_API_KEY", "k-123456")
    # (--offline: validate would ask api.iterable.com whether the key is accepted)
    result = runner.invoke(app, ["--project-dir", str(tmp_path / "proj"), "validate", "--offline"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    again = runner.invoke(app, ["init", str(tmp_path / "proj")], catch_exceptions=False)
    assert again.exit_code != 0 and "--force" in again.output


def test_init_help_says_force_keeps_an_existing_warehouse(tmp_path):
    """`dinsync init --help` said `--force`: "Overwrite existing files.", while init --force keeps an
    existing warehouse.duckdb (README): a user with a warehouse in the folder read that it would go."""
    helped = " ".join(CliRunner().invoke(app, ["init", "--help"]).output.replace("│", " ").split())
    assert "warehouse.duckdb is kept" in helped, helped
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "warehouse.duckdb").write_bytes(b"mine")
    (tmp_path / "p" / "dinsync.yml").write_text("mine\n")
    assert CliRunner().invoke(app, ["init", str(tmp_path / "p"), "--force"]).exit_code == 0
    assert (tmp_path / "p" / "warehouse.duckdb").read_bytes() == b"mine"


@pytest.mark.parametrize("command", ["runs", "rejections"])
def test_runs_and_rejections_in_a_project_without_syncs_say_there_is_none(tmp_path, command):
    """With syncs/ empty, `dinsync runs` said "name a sync: the project has 0" (hint "syncs: (none)"),
    a usage error asking for a name no sync has; the project has no sync: a configuration error."""
    assert CliRunner().invoke(app, ["init", str(tmp_path / "p")]).exit_code == 0
    (tmp_path / "p" / "syncs" / "iterable_customers.yml").unlink()
    result = CliRunner().invoke(app, [command, "-p", str(tmp_path / "p"), "--json"])
    assert result.exit_code == ExitCode.CONFIG_ERROR, result.output
    report = json.loads(result.stdout)
    assert "the project has no sync" in report["issues"][0]["message"], report
    assert "syncs/" in report["issues"][0]["hint"], report


def test_init_prints_a_next_step_that_can_be_pasted_into_a_shell(tmp_path):
    folder = tmp_path / "my project (v2)"
    result = CliRunner().invoke(app, ["init", str(folder)], catch_exceptions=False)
    assert result.exit_code == 0
    assert result.stdout.splitlines()[-1] == f"next: cd '{folder}' && dinsync validate"

def test_init_says_which_variable_its_next_step_needs(tmp_path, monkeypatch):
    """`init` ended with "next: cd p && dinsync validate", which, followed as printed, failed (exit 3:
    ITERABLE_API_KEY is not set) for every new user. It says what to export first, and where the
    sandbox's key is explained; followed so, the next step passes."""
    monkeypatch.delenv("ITERABLE_API_KEY", raising=False)
    result = CliRunner().invoke(app, ["init", str(tmp_path / "p")], catch_exceptions=False)
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert lines[-2] == (f"first: export ITERABLE_API_KEY=<your Iterable API key> (no account? "
                         f"{tmp_path / 'p' / 'README.md'} says how to use the local sandbox)"), lines
    monkeypatch.setenv("ITERABLE_API_KEY", "k-123456")
    checked = CliRunner().invoke(app, ["--project-dir", str(tmp_path / "p"), "validate", "--offline"])
    assert checked.exit_code == 0, checked.output


@pytest.mark.parametrize("command", [["init", "{folder}"], ["demo", "--path", "{folder}", "--rows", "5"]])
def test_init_and_demo_in_a_folder_they_cannot_write_say_so(tmp_path, monkeypatch, command):
    """A folder the user cannot write to (permissions, a read-only mount) is one clear usage error
    naming it, not "unexpected error: PermissionError" (exit 1). Simulated, since tests may run as root."""
    from pathlib import Path

    folder = tmp_path / "readonly" / "proj"
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(tmp_path / "readonly")):
            raise PermissionError(13, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, [a.format(folder=folder) for a in command])
    assert result.exit_code == ExitCode.USAGE, result.output
    text = " ".join(result.output.split())
    assert "unexpected" not in text and "Traceback" not in text
    assert "cannot write" in text and "Permission denied" in text and "hint:" in text, text


def test_missing_project_is_a_config_error(tmp_path):
    result = CliRunner().invoke(app, ["--project-dir", str(tmp_path), "sync"], catch_exceptions=False)
    assert result.exit_code == ExitCode.CONFIG_ERROR
    assert "dinsync.yml" in result.output


def test_unknown_option_is_a_usage_error():
    result = CliRunner().invoke(app, ["sync", "--no-such-flag"])
    assert result.exit_code == ExitCode.USAGE


def test_sandbox_command_serves_on_loopback_and_stops_on_sigterm():
    env = dict(os.environ, DINSYNC_SANDBOX_API_KEY="manual-key")
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "sandbox", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening http://127.0.0.1:"), line
        url = line.split()[1]
        request = urllib.request.Request(url + "/api/users/getByEmail?email=a%40b.co", headers={"Api-Key": "manual-key"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200 and json.loads(resp.read()) == {}
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


@pytest.mark.parametrize("platform", ["attio", "attentive"])
def test_sandbox_command_serves_each_platform(platform):
    env = dict(os.environ, DINSYNC_SANDBOX_API_KEY="manual-key")
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "sandbox", platform, "--port", "0", "--no-limits"],
                            env=env, stdout=subprocess.PIPE, text=True)
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("listening http://127.0.0.1:"), line
        path = "/v2/self" if platform == "attio" else "/v1/me"
        request = urllib.request.Request(line.split()[1] + path, headers={"Authorization": "Bearer manual-key"})
        with urllib.request.urlopen(request, timeout=5) as resp:
            assert resp.status == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_sandbox_command_rejects_bad_options_as_usage_errors():
    result = CliRunner().invoke(app, ["sandbox", "attio", "--no-such-option"])
    assert result.exit_code == ExitCode.USAGE


@pytest.mark.parametrize("args", [["iterable", "--port", "99999"], ["attio", "--port", "-1"],
                                  ["splio", "--http-port", "70000", "--sftp-password-env", "X"]])
def test_sandbox_port_out_of_range_is_a_usage_error(args):
    # (it was "unexpected OverflowError: bind(): port must be 0-65535", exit 1)
    result = CliRunner().invoke(app, ["sandbox", *args])
    assert result.exit_code == ExitCode.USAGE
    assert "a port is a number from 0 to 65535" in result.output and "Overflow" not in result.output

def test_sandbox_help_lists_the_platforms_under_the_commands_name():
    """`dinsync sandbox --help` used to show the Iterable options only, and usage and error
    messages named the program `python -m dinsync.sandbox`."""
    result = CliRunner().invoke(app, ["sandbox", "--help"])
    assert result.exit_code == 0
    text = result.output
    assert text.startswith("usage: dinsync sandbox ") and "python -m" not in text
    for platform in ("iterable", "attio", "attentive", "splio"):
        assert f"    {platform}" in text
    assert "`dinsync sandbox PLATFORM --help` lists a platform's options. Without a platform: iterable." in \
        " ".join(text.split())
    assert "--project-type" not in text  # an Iterable option: `dinsync sandbox iterable --help` has it

    one = CliRunner().invoke(app, ["sandbox", "iterable", "--help"])
    assert one.exit_code == 0 and one.output.startswith("usage: dinsync sandbox iterable ") and "--project-type" in one.output


def test_sandbox_help_names_the_default_port_and_key():
    """The README says `dinsync sandbox` serves on 127.0.0.1:8765 and accepts `sandbox-key`; its
    --help named neither ("port on 127.0.0.1 (0: any free port)", "accepted key (repeatable; or
    $DINSYNC_SANDBOX_API_KEY)"). `python -m dinsync.sandbox` has no default key, and says none."""
    import subprocess
    import sys

    for platform, port in (("iterable", "8765"), ("attio", "8766"), ("attentive", "8767")):
        text = " ".join(CliRunner().invoke(app, ["sandbox", platform, "--help"]).output.split())
        assert f"port on 127.0.0.1 (default: {port}; 0: any free port)" in text, text
        assert "or $DINSYNC_SANDBOX_API_KEY; default: sandbox-key)" in text, text
    text = " ".join(CliRunner().invoke(app, ["sandbox", "splio", "--help"]).output.split())
    assert "(default: 8768; 0: any free port)" in text and "(default: 2222; 0: any free port)" in text
    assert "default: sandbox-key" in text
    bare = subprocess.run([sys.executable, "-m", "dinsync.sandbox", "iterable", "--help"], capture_output=True,
                          text=True, check=True).stdout
    assert "default: 8765" in " ".join(bare.split()) and "sandbox-key" not in bare


def test_the_four_sandboxes_run_side_by_side_on_their_default_ports():
    """`dinsync sandbox attio` and `dinsync sandbox splio` both defaulted to 8766: started together
    (the README's Attio and Splio examples), the second stopped with "port 8766 on 127.0.0.1 is in use"."""
    import re

    ports = {}
    for platform in ("iterable", "attio", "attentive", "splio"):
        text = " ".join(CliRunner().invoke(app, ["sandbox", platform, "--help"]).output.split())
        ports[platform] = re.findall(r"\(default: (\d+); 0: any free port\)", text)
    found = [port for each in ports.values() for port in each]
    assert len(found) == 5 and len(set(found)) == len(found), ports


def test_sandbox_usage_errors_name_the_command():
    result = CliRunner().invoke(app, ["sandbox", "attio", "--no-such-option"])
    assert result.exit_code == ExitCode.USAGE
    assert "dinsync sandbox: error: unrecognized arguments: --no-such-option" in result.output
    assert "python -m dinsync.sandbox" not in result.output
    assert "`dinsync sandbox attio --help` lists its options" in result.output


def test_sandbox_with_a_mistyped_platform_names_the_platforms_not_iterables_options():
    """`dinsync sandbox attentiv` took the word for an argument of the default platform: "unrecognized
    arguments: attentiv; `dinsync sandbox iterable --help` lists its options", sending the user to
    Iterable's options instead of saying the platform is unknown."""
    result = CliRunner().invoke(app, ["sandbox", "attentiv", "--port", "0"])
    assert result.exit_code == ExitCode.USAGE
    text = " ".join(result.output.split())
    assert "invalid choice: 'attentiv'" in text and "'attentive'" in text, text
    assert "iterable --help" not in text


def test_sandbox_splio_given_port_names_its_two_ports():
    """`dinsync sandbox splio --port 8768`, as for the other platforms: "unrecognized arguments:
    --port 8768" under the top-level usage, no word of the options splio takes instead."""
    result = CliRunner().invoke(app, ["sandbox", "splio", "--port", "8768", "--sftp-password-env", "X"])
    assert result.exit_code == ExitCode.USAGE
    text = " ".join(result.output.split())
    assert "unrecognized arguments: --port 8768" in text and "--http-port P" in text and "--sftp-port P" in text
    # and its help names the SFTP user it accepts (the login failed for any other sftp.username)
    helped = " ".join(CliRunner().invoke(app, ["sandbox", "splio", "--help"]).output.split())
    assert "sftp.username in dinsync.yml (default: dinsync)" in helped, helped


def test_init_projects_readme_sandbox_instructions_work_as_written(tmp_path, monkeypatch):
    """The scaffolded README said "export ITERABLE_API_KEY=... # or start the local sandbox and
    uncomment base_url", never which key `dinsync sandbox` accepts: a user who exported anything
    got a 401 and the sync paused itself (credentials). Follow the instructions literally."""
    assert CliRunner().invoke(app, ["init", str(tmp_path / "p")]).exit_code == 0
    readme = " ".join((tmp_path / "p" / "README.md").read_text().split())
    key = re.search(r"then `export ITERABLE_API_KEY=(\S+)`", readme)
    assert key and "run `dinsync sandbox` in another terminal" in readme, readme
    env = {k: v for k, v in os.environ.items() if k != "DINSYNC_SANDBOX_API_KEY"}
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "sandbox", "--port", "0"], env=env,
                            stdout=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().split()[1]
        yml = tmp_path / "p" / "dinsync.yml"
        yml.write_text(re.sub(r"# base_url: http://127\.0\.0\.1:8765", f"base_url: {url}", yml.read_text()))
        monkeypatch.setenv("ITERABLE_API_KEY", key.group(1))
        result = CliRunner().invoke(app, ["--json", "-p", str(tmp_path / "p"), "sync", "iterable_customers"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["runs"][0]["acknowledged"] == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0


def test_help_texts_are_paragraphs_and_name_the_exit_codes():
    # the docstrings' hard line breaks were kept by Typer and wrapped again at the terminal's
    # width: "each mapping against its" / "platform's schema" on lines of their own
    import typer

    commands = typer.main.get_command(app).commands
    for name in ("validate", "sync", "status", "check", "serve", "sandbox"):
        paragraphs = commands[name].help.split("\n\n")
        assert all("\n" not in p for p in paragraphs), (name, commands[name].help)
    text = " ".join(CliRunner().invoke(app, ["--help"]).output.replace("│", " ").split())
    assert ("Exit codes: 0 ok, 1 a run failed, 2 usage error, 3 configuration error, 4 warnings, "
            "5 another run holds the lock, 6 paused by hand") in text, text
    assert "stopped by SIGTERM or Ctrl-C: 143 or 130" in text, text


def test_init_cut_short_by_a_full_disk_leaves_nothing_behind(tmp_path, monkeypatch):
    """The six files fit, the warehouse did not (a 28 KB tmpfs): init failed (exit 2) leaving them
    and a warehouse.duckdb DuckDB had begun; the next `init` refused the files ("use --force") and
    `init --force` kept that warehouse (an existing one), which every command then refused as no
    database. What init created is removed."""
    import duckdb

    folder = tmp_path / "proj"

    def connect(name, *args, **kwargs):
        open(name, "wb").write(b"\0" * 4096)
        raise duckdb.IOException(f'Could not write file "{name}": No space left on device')

    monkeypatch.setattr(duckdb, "connect", connect)
    result = CliRunner().invoke(app, ["init", str(folder)])
    assert result.exit_code == ExitCode.USAGE and "No space left on device" in result.output, result.output
    assert not folder.exists()
    monkeypatch.undo()
    result = CliRunner().invoke(app, ["init", str(folder)])  # space freed: no --force needed
    assert result.exit_code == 0, result.output
    duckdb.connect(str(folder / "warehouse.duckdb")).close()


@pytest.mark.parametrize("full_at", ["dinsync.yml", "attio/dinsync.yml"])
def test_demo_on_a_full_disk_names_the_file_it_could_not_write(tmp_path, monkeypatch, full_at):
    """A disk that filled up while the demo wrote its project (an 8 KB tmpfs: its first file; a
    400 KB one: the Attio step's) ended in "unexpected error: OSError: [Errno 28] No space left on
    device" (exit 1), naming no file, with a traceback hint. It is the folder's usage error (exit
    2), as a folder the demo cannot write is, naming the file; the file cut short is not left."""
    from pathlib import Path

    folder = tmp_path / "demo"
    real = Path.write_text

    def write_text(self, text, *args, **kwargs):
        if self == folder / full_at:
            real(self, text[:10], *args, **kwargs)  # (a part, then the disk is full)
            raise OSError(28, "No space left on device")
        return real(self, text, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", write_text)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["demo", "--path", str(folder), "--rows", "20"])
    text = " ".join(result.output.split())
    assert result.exit_code == ExitCode.USAGE, result.output
    assert f"cannot write {folder / full_at}: No space left on device" in text and "unexpected" not in text, text
    assert not (folder / full_at).exists()
