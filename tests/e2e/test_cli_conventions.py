"""CLI conventions: --version, options after the subcommand, positional names, --exclude, one JSON
shape per run, the plan table with per-field counts, progress lines in logs, lazy imports."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from dinsync.cli import app
from dinsync.errors import ExitCode
from dinsync.report import RUN_COUNTS


def test_version():
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0 and result.stdout.startswith("dinsync ")


def test_version_with_json_is_a_json_document():
    """`--json` promises JSON on stdout: `dinsync --json --version` printed `dinsync 0.1.0`."""
    from dinsync import __version__

    for args in (["--json", "--version"], ["--version", "--json"]):
        done = subprocess.run([sys.executable, "-m", "dinsync", *args], capture_output=True, text=True)
        assert done.returncode == 0 and json.loads(done.stdout) == {"version": __version__}, done.stdout


def test_python_dash_m_dinsync_is_the_dinsync_command(tmp_path):
    version = subprocess.run([sys.executable, "-m", "dinsync", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout.startswith("dinsync ")
    missing = subprocess.run([sys.executable, "-m", "dinsync", "validate", "--project-dir", str(tmp_path)],
                             capture_output=True, text=True)
    assert missing.returncode == ExitCode.CONFIG_ERROR and "no dinsync.yml in" in missing.stderr


@pytest.mark.parametrize("args", [["sync", "--json", "--no-such-flag"], ["--json", "status", "--limit", "0"],
                                  ["pause", "--json"], ["--json", "no-such-command"]])
def test_a_usage_error_under_json_is_a_json_document_on_stdout(tmp_path, args):
    """`--json` promises a JSON document on stdout, `{"error", "hint", "exit_code"}` for a command
    that cannot start; a usage error (an unknown option, a value out of range, a missing argument)
    printed typer's boxed text on stderr and nothing on stdout: an orchestrator parsing stdout failed
    on an empty document instead of reading exit_code 2."""
    done = subprocess.run([sys.executable, "-m", "dinsync", *args, "-p", str(tmp_path)], capture_output=True,
                          text=True)
    assert done.returncode == ExitCode.USAGE, done.stderr
    report = json.loads(done.stdout)
    assert report["exit_code"] == ExitCode.USAGE and report["error"], report
    assert "Traceback" not in done.stderr
    # the top level's help lists its commands; a command's, its options
    assert report["hint"].endswith("commands and options" if "no-such-command" in args else "lists the options")


def test_global_options_after_the_subcommand_and_positional_names(project):
    (project.root / "syncs" / "other.yml").write_text(
        (project.root / "syncs" / "iterable_users.yml").read_text())
    result = project.runner.invoke(app, ["sync", "iterable_users", "--json", "-p", str(project.root)],
                                   catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert [r["sync"] for r in json.loads(result.stdout)["runs"]] == ["iterable_users"]
    result = project.runner.invoke(app, ["status", "--project-dir", str(project.root), "--json", "iterable_*"],
                                   catch_exceptions=False)
    assert [r["sync"] for r in json.loads(result.stdout)["runs"]] == ["iterable_users"]
    plan = project.runner.invoke(app, ["plan", "-p", str(project.root), "--json", "--exclude", "iterable_*"],
                                 catch_exceptions=False)
    assert [p["sync"] for p in json.loads(plan.stdout)["plans"]] == ["other"]


def test_project_options_before_init_demo_or_sandbox_are_refused_not_ignored(tmp_path, monkeypatch):
    # `dinsync -p DIR init x` wrote ./x, ignoring -p (after the subcommand, -p was already a usage
    # error); `dinsync --json sandbox` started a sandbox that writes no JSON. Both: exit 2, nothing done.
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    runner = CliRunner()
    for args in (["-p", "proj", "init", "x"], ["--project-dir", "proj", "demo", "--path", "x", "--rows", "5"],
                 ["-p", "proj", "sandbox", "--port", "0"], ["--json", "sandbox", "--port", "0"]):
        result = runner.invoke(app, args, catch_exceptions=False)
        assert result.exit_code == ExitCode.USAGE, (args, result.output)
        assert "takes no" in result.output, args
    assert sorted(p.name for p in tmp_path.iterdir()) == ["proj"] and not any((tmp_path / "proj").iterdir())
    result = runner.invoke(app, ["--json", "-p", "proj", "init", "x"], catch_exceptions=False)
    assert result.exit_code == ExitCode.USAGE
    assert json.loads(result.stdout)["error"] == "`dinsync init` takes no --project-dir"
    result = runner.invoke(app, ["--json", "init", "x"], catch_exceptions=False)  # --json: init takes it
    assert result.exit_code == 0 and "x/dinsync.yml" in json.loads(result.stdout)["created"]


def test_exclude_and_unknown_names(project):
    data = project.sync("--exclude", "iterable_users")
    assert data["runs"] == [] and data["exit_code"] == 0
    assert "nothing to do" in project.last.stderr
    result = project.cli("sync", "iterable_user")
    assert result.exit_code == ExitCode.CONFIG_ERROR
    [issue] = json.loads(result.stdout)["issues"]
    assert issue["message"] == "no sync named 'iterable_user'" and "did you mean 'iterable_users'?" in issue["hint"]


def test_an_empty_selection_sends_nothing(project):
    # e.g. `dinsync sync --select "$SYNCS"` with SYNCS unset: a configuration error, not every sync
    for args in (["--select", ""], [""], ["--select", ","]):
        result = project.cli("sync", *args)
        assert result.exit_code == ExitCode.CONFIG_ERROR, (args, result.output)
        [issue] = json.loads(result.stdout)["issues"]
        assert issue["message"] == "--select names no sync (it is empty)"
    assert project.requests.requests == []

def test_a_run_is_one_json_shape_in_sync_status_and_failure(project):
    [ran] = project.sync()["runs"]
    [logged] = json.loads(project.cli("status").stdout)["runs"]
    assert list(ran) == list(logged)
    assert set(RUN_COUNTS) <= set(ran) and {"sync", "run_id", "status", "error", "warnings"} <= set(ran)
    for key in ("run_id", "sync", "status", "started_at", "finished_at", "full_refresh", *RUN_COUNTS, "warnings",
                "error", "tool_version"):
        assert ran[key] == logged[key], key
    assert ran["started_at"].endswith("Z") and ran["finished_at"].endswith("Z") and ran["warnings"] == []
    project.sql("insert into dinsync.locks (sync, run_id, holder, acquired_at, expires_at) "
                "values ('iterable_users', 'other-run', 'host:1', timezone('UTC', now()), "
                "timezone('UTC', now()) + interval 1 hour)")
    failed = project.sync()
    assert failed["exit_code"] == ExitCode.LOCKED
    [refused] = failed["runs"]
    assert list(refused) == list(ran)
    assert refused["status"] == "failed" and refused["run_id"] is None and "already running" in refused["error"]
    assert refused["hint"] and refused["started_at"].endswith("Z")


def test_plan_shows_a_table_and_per_field_change_counts(project):
    project.sync()
    project.sql("update main.customers set plan = 'pro' where id in (1, 2)")
    project.sql("update main.customers set first_name = 'Renamed', plan = 'team' where id = 3")
    project.sql("delete from main.customers where id = 20")
    [plan] = json.loads(project.cli("plan").stdout)["plans"]
    assert (plan["changed"], plan["removed"]) == (3, 1)
    assert plan["field_changes"] == {"firstName": 1, "plan": 3, "ltv": 0}
    [third] = [s for s in plan["samples"]["changed"] if s["key"] == "user3@example.com"]
    assert third == {"key": "user3@example.com", "op": "changed", "changed_fields": ["firstName", "plan"],
                     "fields": {"firstName": "Renamed", "plan": "team", "ltv": 4.5}, "rejected": []}
    text = project.cli("plan", json_output=False).stdout
    assert "changed rows per field: firstName 1, plan 3, ltv 0" in text
    assert any("user1@example.com" in line and "changed" in line and 'plan="pro"' in line
               for line in text.splitlines()), text
    assert any("user20@example.com" in line and "removed" in line for line in text.splitlines()), text
    assert project.thread.call(project.sandbox.stats)["requests"] == 1  # the first sync's only


def test_logs_get_one_line_per_phase(project):
    result = project.cli("sync", json_output=False)
    assert result.exit_code == 0
    lines = [line.rsplit(" [", 1)[0] for line in result.stderr.splitlines()]
    assert lines[:2] == ["iterable_users: planning", "iterable_users: sending 20 rows"]
    assert lines[-1] == "iterable_users: sent 20/20 rows, committing"
    assert any(line.startswith("iterable_users: sent ") and "acknowledged" in line for line in lines)
    assert "iterable_users success" in result.stdout


# (and dinsync's dbt support, ~21M instructions, in a project without dbt_project.yml)
HEAVY = ("polars", "aiohttp", "sqlglot", "pyarrow", "pyarrow.compute", "asyncio", "phonenumbers", "dinsync.config.dbt")
PROBE = """\
import atexit, json, sys
from dinsync import cli
sys.argv = ["dinsync", *sys.argv[1:]]
# main() leaves through os._exit after the atexit hooks (dinsync.process.exit_now)
atexit.register(lambda: print("IMPORTED " + json.dumps(sorted(m for m in %r if m in sys.modules)),
                              file=sys.stderr, flush=True))
cli.main()
""" % (HEAVY,)


def imported_by(*args: str) -> tuple[str, list[str]]:
    """(stdout, heavy libraries imported) of `dinsync ARGS` in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    [line] = [line for line in proc.stderr.splitlines() if line.startswith("IMPORTED ")]
    return proc.stdout, json.loads(line.split(" ", 1)[1])


def test_start_up_imports_no_heavy_library(project):
    project.sync()
    stdout, heavy = imported_by("--version")
    assert stdout.startswith("dinsync ") and heavy == []
    stdout, heavy = imported_by("-p", str(project.root), "status", "--json")
    assert json.loads(stdout)["runs"][0]["status"] == "success" and heavy == []
    # (validate without --offline asks the platform whether the key is accepted: aiohttp then)
    stdout, heavy = imported_by("-p", str(project.root), "validate", "--offline")
    assert stdout.startswith("OK") and heavy == []


def test_a_sync_with_nothing_to_send_imports_no_heavy_library(project, monkeypatch):
    """The everyday no-op run: the diff runs in DuckDB, nothing is mapped or sent, and its
    small results are read without Arrow, nor is the rejections row of its rows without a key."""
    monkeypatch.setenv("DINSYNC_CACHE_DIR", str(project.root / ".cache"))
    project.sql("insert into main.customers values (50, NULL, 'u-50', 'no key', 'free', 1)")
    project.sync()
    imported_by("-p", str(project.root), "--json", "sync")  # renders (and caches) its SQL for this process
    stdout, heavy = imported_by("-p", str(project.root), "--json", "sync")
    [run] = json.loads(stdout)["runs"]
    assert run["status"] == "success" and run["added"] + run["changed"] == 0 and heavy == []
    assert run["null_keys"] == 1 and project.sql(
        "select count(*) from dinsync.rejections where run_id = ? and status = 'skipped'", run["run_id"]) == [(1,)]


def test_a_sync_with_changes_imports_no_sqlglot_nor_arrow_compute_once_its_sql_is_cached(project, monkeypatch):
    """The everyday run after a little churn: its SQL comes from the cache, so sqlglot (~0.3 s to
    import) is not loaded; sizing DuckDB's pools for the commits' deletes used to name the
    snapshot table with it."""
    monkeypatch.setenv("DINSYNC_CACHE_DIR", str(project.root / ".cache"))
    project.sync()
    project.sql("update main.customers set plan = 'pro' where id = 3")
    imported_by("-p", str(project.root), "--json", "sync")  # renders (and caches) its SQL for this process
    project.sql("update main.customers set plan = 'team' where id = 4")
    stdout, heavy = imported_by("-p", str(project.root), "--json", "sync")
    [run] = json.loads(stdout)["runs"]
    assert (run["status"], run["changed"], run["acknowledged"]) == ("success", 1, 1)
    assert "sqlglot" not in heavy and "polars" in heavy  # (it did map and send)
    # nor pyarrow.compute (~25 ms): Polars' conversion of an Arrow array imports it, the commits
    # hand Polars record batches
    assert "pyarrow.compute" not in heavy and "pyarrow" in heavy, heavy
    # nor phonenumbers (58 modules, ~30 ms of CPU beside the plan): the key is an email, no field a phone
    assert "phonenumbers" not in heavy, heavy


def _sync_with_stderr_on_a_terminal(project, **env_changes: str) -> tuple[int, str, str]:
    """`dinsync sync` with stderr on a pseudo-terminal: (exit code, stdout, what the terminal got)."""
    import os
    import pty
    import select
    import time

    env = {k: v for k, v in os.environ.items() if k not in ("FORCE_COLOR", "TTY_COMPATIBLE", "NO_COLOR")}
    env.update(env_changes)
    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "dinsync.cli", "-p", str(project.root), "sync"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    terminal, deadline = b"", time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                terminal += chunk
            elif proc.poll() is not None:
                break
        stdout = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))[0].decode()
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(master)
    return proc.returncode, stdout, terminal.decode("utf-8", "replace")


def test_a_terminal_gets_the_progress_bar(project):
    """stderr on a pseudo-terminal: the rich bar (not the log lines), notes above it, and the run
    ends (the bar's stream redirection must not loop back into our redacting console)."""
    project.sql("insert into main.customers values (50, NULL, 'u-50', 'no key', 'free', 1)")
    code, stdout, text = _sync_with_stderr_on_a_terminal(project)
    assert code == 0, text
    assert "iterable_users success" in stdout
    assert "\x1b[" in text and "committing" in text and "20/20" in text
    assert "iterable_users: note: 1 row with a NULL matching key was skipped" in text
    assert "iterable_users: planning [" not in text  # the log lines are for non-terminals


def test_a_dumb_terminal_gets_the_progress_lines(project):
    """TERM=dumb (Emacs' shell, an editor's or CI's pseudo-terminal): rich draws no live bar on
    such a terminal, so `sync` showed no progress at all, only blank lines where the bar would
    have been. It gets the log lines, as a pipe does."""
    code, stdout, text = _sync_with_stderr_on_a_terminal(project, TERM="dumb")
    assert code == 0, text
    assert "iterable_users success" in stdout
    for line in ("iterable_users: planning [", "iterable_users: sending 20 rows [", "committing ["):
        assert line in text, (line, text)
    assert "\x1b[" not in text, text


def test_the_parked_note_is_left_out_by_runs_that_send_the_parked_rows(project):
    # `sync --full-refresh` sends every row, the parked ones too (rejected again here), yet said
    # "1 rejected rows are parked until their values change (--retry-rejected sends them again)"
    project.seed(4)
    project.sql("insert into main.customers values (5, 'not-an-email', 'u-5', 'X', 'free', 1.0)")
    assert project.sync()["runs"][0]["rejected"] == 1
    assert project.sync()["runs"][0]["rejected"] == 0  # parked: not sent again, and the run says so
    assert "1 rejected row is parked until its values change" in project.last.stderr
    refresh = project.sync("--full-refresh")["runs"][0]
    assert (refresh["added"], refresh["rejected"]) == (5, 1), refresh  # the parked row was sent again
    assert "parked until" not in project.last.stderr, project.last.stderr
    assert project.sync("--retry-rejected")["runs"][0]["rejected"] == 1
    assert "parked until" not in project.last.stderr


def _readme_commands() -> dict[str, str]:
    """The README's Commands block: {command: its line} (`dinsync sync [SYNC...] [--select S] ...`)."""
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    block = readme.split("## Commands", 1)[1].split("```", 2)[1]
    lines = {}
    for line in block.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) > 1 and words[0] == "dinsync" and words[1].isalpha():
            lines[words[1]] = " ".join(words)
    return lines


def test_each_commands_help_names_what_the_readme_lists():
    # `dinsync plan --help` said `Usage: dinsync plan [OPTIONS] [[SYNC]...]...` (typer wraps an
    # optional argument's metavar in [...] itself) and `dinsync init [OPTIONS] {path}`, where the
    # README writes `dinsync plan [SYNC...]` and `dinsync init my_project`.
    import re
    commands = _readme_commands()
    assert {"init", "validate", "plan", "sync", "status", "runs", "rejections", "serve", "pause",
            "resume", "check", "demo"} <= set(commands)
    for name, line in commands.items():
        if name == "sandbox":  # argparse's own help (test_sandbox_cli)
            continue
        result = CliRunner().invoke(app, [name, "--help"], terminal_width=200)
        assert result.exit_code == 0, (name, result.output)
        usage = next(text.strip() for text in result.output.splitlines() if "Usage:" in text)
        assert "[[" not in usage and "{path}" not in usage, usage
        for option in re.findall(r"--[a-z-]+", line):
            assert option in result.output, (name, option)


def test_readme_documents_the_plan_objects_keys(project):
    """README documented `plan --json`'s samples, field_changes and duplicates in prose, but not the
    plan object (segment_rows, null_keys, duplicate_rows, first_sync, retry_rejected, notes, ...)."""
    from pathlib import Path
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    documented = [json.loads(block.split("```", 1)[0]) for block in readme.split("```json\n")[1:]
                  if block.lstrip().startswith('{"sync"') and '"samples"' in block.split("```", 1)[0]]
    assert documented, "README shows no plan object"
    project.sync()
    project.sql("update main.customers set first_name = 'Renamed' where id = 3")
    project.sql("insert into main.customers values (99, 'new@example.com', 'u-99', 'New', 'pro', 1)")
    [plan] = json.loads(project.cli("plan").stdout)["plans"]
    assert list(plan) == list(documented[0])
    for op in ("added", "changed"):
        assert list(plan["samples"][op][0]) == list(documented[0]["samples"][op][0]), op


def test_each_commands_help_shows_the_readmes_value_names_and_no_value_for_a_flag():
    """typer 0.29 shows each option's Python type in --help: `--json <bool>`, `--offline <bool>`,
    `--force <bool>` (flags, which take no value: `--offline true` selects a sync named `true`),
    `--select <list[str]>`, `--limit <int range> [x>=1]`, `--run <str>`, `-p <Path>`. A flag now
    shows none, and an option the value name the README's command list gives it (`--limit N`,
    `--select S`, `--run RUN_ID`, `--path DIR`)."""
    import re
    for name, line in _readme_commands().items():
        if name == "sandbox":  # argparse's own help (test_sandbox_cli)
            continue
        help_text = CliRunner().invoke(app, [name, "--help"], env={"COLUMNS": "200"}).output
        rows = {m.group(1): m.group(0) for m in re.finditer(r"(--[a-z-]+)\b[^\n]*", help_text)}
        assert not [row for option, row in rows.items() if "<bool>" in row and option != "--help"], (name, rows)
        for option, value in re.findall(r"\[(--[a-z-]+) ([A-Z_]+)\]", line):
            assert re.search(rf"\s{value}\b", rows[option]), (name, option, value, rows[option])
        assert re.search(r"\sDIR\b", rows["--project-dir"] if "--project-dir" in rows else "-p DIR"), rows


def test_readme_documents_the_json_of_validate_and_init(project, tmp_path):
    """The README gave the --json document of sync, status, runs, rejections, plan, check, pause and
    serve, not that of validate (`{"ok", "syncs", "models", "destinations", "paused"}`) nor init's
    (`{"created"}`), whose field names an orchestrator reads all the same."""
    import re
    from pathlib import Path
    readme = " ".join((Path(__file__).resolve().parents[2] / "README.md").read_text().split())
    project.cli("pause", "iterable_users")
    validated = json.loads(project.cli("validate", "--offline").stdout)
    created = json.loads(CliRunner().invoke(app, ["--json", "init", str(tmp_path / "new")]).stdout)
    for command, document in (("validate", validated), ("init", created)):
        sentence = re.search(rf"`{command} --json` prints (`[^`]*`)", readme)
        assert sentence, command
        keys = set(document) | {k for v in document.values() if isinstance(v, list) for d in v
                                if isinstance(d, dict) for k in d}
        assert validated["paused"] and keys, document
        assert not [k for k in keys if f'"{k}"' not in sentence.group(1)], (command, keys, sentence.group(1))
