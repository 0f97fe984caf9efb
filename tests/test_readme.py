"""README.md against the code: a user copies its config examples, commands and exit codes verbatim.

- every ```yaml block (dinsync.yml and sync files) loads with the real loader, as written and with
  each commented-out option (`# key: value`) switched on alone;
- the exit codes and their precedence it states are the code's;
- every option of a `dinsync ...` command it quotes exists on that command.
Cheap (no warehouse is opened, no command is run): a few seconds."""
from __future__ import annotations

import argparse
import copy
import re
from pathlib import Path

import pytest
import typer
import yaml

from dinsync.cli import app
from dinsync.config.loader import load_project
from dinsync.errors import ConfigError, ExitCode
from dinsync.report import EXIT_PRECEDENCE
# a migrated, empty state schema on DuckDB and PostgreSQL (the README's queries are PostgreSQL's
# syntax, which DuckDB reads)
from tests.state.test_shared_records import target  # noqa: F401

README = Path(__file__).resolve().parents[1] / "README.md"
TEXT = README.read_text(encoding="utf-8")

BASE_PROJECT = {
    "version": 1,
    "warehouse": {"type": "duckdb", "path": "warehouse.duckdb"},
    "state_schema": "dinsync",
    "destinations": {"iterable": {"type": "iterable", "api_key": "${env:ITERABLE_API_KEY}"}},
}
BASE_SYNC = ("model: active_customers\ndestination: iterable\nservice: users\nmode: upsert\n"
             "match: {column: email, field: email}\nfields: {first_name: firstName}\n")
MODEL = "-- primary_key: customer_id\n-- model_type: user\nselect 1 as customer_id\n"
# a commented option the README offers instead of one written above it
INSTEAD_OF = {"private_key": "password"}


class _Env(dict):
    """Every `${env:NAME}` is set: a URL where the setting takes one, else a token."""

    def __missing__(self, name: str) -> str:
        return "https://hooks.example.com/services/T0/B0/abcdefghijklmnop" if "WEBHOOK" in name \
            else f"readme-{name.lower()}-value"

    def __contains__(self, name: object) -> bool:
        return True

    def get(self, name, default=None):
        return self[name]


def _blocks(lang: str) -> list[tuple[int, list[str]]]:
    """(first line number, lines) of each fenced block of `lang`."""
    found, inside = [], None
    for number, line in enumerate(TEXT.splitlines(), 1):
        if line.startswith("```"):
            if inside is None:
                inside = (line[3:].strip(), number + 1, [])
            else:
                if inside[0] == lang:
                    found.append((inside[1], inside[2]))
                inside = None
        elif inside is not None:
            inside[2].append(line)
    return found


def _documents(lines: list[str]) -> list[tuple[str | None, str]]:
    """A block split at its `# dinsync.yml` / `# syncs/NAME.yml` headers: (header, text)."""
    docs: list[list] = []
    for line in lines:
        header = re.match(r"# (dinsync\.yml|syncs/\S+\.yml.*)$", line)
        if header or not docs:
            docs.append([header.group(1) if header else None, []])
            if header:
                continue
        docs[-1][1].append(line)
    return [(h, "\n".join(body)) for h, body in docs]


def _variants(text: str) -> list[tuple[str, str]]:
    """The text as written, then with each commented option (`# key: value`) switched on alone; a
    comment holding several (`# attempts: 4   timeout_seconds: 10`) gives one line each."""
    out = [("as written", text)]
    lines = text.split("\n")
    for i, line in enumerate(lines):
        m = re.match(r"^(\s*)# ([a-z_]+: .*)$", line)
        if not m:
            continue
        indent, option = m.groups()
        parts = re.split(r"\s{3,}(?=[a-z_]+: )", option.split("  #")[0].strip())
        variant = lines[:i] + [indent + p for p in parts] + lines[i + 1:]
        key = parts[0].split(":")[0]
        if key in INSTEAD_OF:
            variant = [v for v in variant if not re.match(rf"^{indent}{INSTEAD_OF[key]}:", v)]
        try:
            yaml.safe_load("\n".join(variant))
        except yaml.YAMLError:  # prose after a `#`, not an option
            continue
        out.append((line.strip(), "\n".join(variant)))
    return out


def _cases() -> list:
    blocks = _blocks("yaml")
    assert len(blocks) >= 10, "the README's yaml blocks were not found"
    # every destination any block declares, for the sync files that name them
    destinations = copy.deepcopy(BASE_PROJECT["destinations"])
    for _, lines in blocks:
        for header, text in _documents(lines):
            data = yaml.safe_load(text) if header in (None, "dinsync.yml") else None
            if isinstance(data, dict) and isinstance(data.get("destinations"), dict):
                destinations.update(data["destinations"])
    cases = []
    for start, lines in blocks:
        for header, text in _documents(lines):
            if header and "one of" in header:  # alternatives, one a line
                for line in filter(None, (ln.split("  #")[0].strip() for ln in text.split("\n"))):
                    cases.append(pytest.param("sync", BASE_SYNC + line + "\n", destinations,
                                              id=f"L{start}-{line}"))
                continue
            for label, variant in _variants(text):
                data = yaml.safe_load(variant)
                kind = "sync" if (header or "").startswith("syncs/") or "model" in (data or {}) else "project"
                cases.append(pytest.param(kind, variant, destinations, id=f"L{start}-{header or kind}-{label}"))
    return cases


@pytest.mark.parametrize("kind, text, destinations", _cases())
def test_every_config_example_loads(tmp_path, kind, text, destinations):
    project = copy.deepcopy(BASE_PROJECT)
    project["destinations"] = copy.deepcopy(destinations)
    sync = BASE_SYNC
    if kind == "sync":
        sync = text
    else:
        for key, value in yaml.safe_load(text).items():
            if key == "destinations":
                project["destinations"].update(value)
            else:
                project[key] = value
    (tmp_path / "models").mkdir()
    (tmp_path / "syncs").mkdir()
    (tmp_path / "dinsync.yml").write_text(yaml.safe_dump(project, sort_keys=False))
    (tmp_path / "models" / "active_customers.sql").write_text(MODEL)
    (tmp_path / "syncs" / "example.yml").write_text(sync)
    try:
        load_project(tmp_path, _Env())
    except ConfigError as exc:
        pytest.fail("README example refused: " + "; ".join(f"{i.file}:{i.line}: {i.message}" for i in exc.issues))


def test_the_exit_codes_are_the_codes():
    codes = {v for k, v in vars(ExitCode).items() if k.isupper()}
    table = TEXT.split("**Exit codes.**", 1)[1].split("\n\n", 1)[0]
    stated = {int(c) for c in re.findall(r"`(\d+)`", table)}
    assert stated == codes
    order = " > ".join(str(c) for c in EXIT_PRECEDENCE)
    precedences = {" ".join(p.split()) for p in re.findall(r"\d(?:\s+>\s+\d)+", TEXT)}
    assert precedences == {order}


def _options(command) -> set[str]:
    return {o for p in command.params for o in (*p.opts, *p.secondary_opts) if o.startswith("-")}


def _sandbox_options() -> set[str]:
    from dinsync.sandbox.__main__ import _parser

    options = set()
    for action in _parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                options.update(o for a in sub._actions for o in a.option_strings)
    return options


def _quoted_commands() -> list[tuple[int, str, str | None]]:
    """(line, text, subcommand) of each `dinsync ...` the README quotes, inline or in the command
    list (a `#` comment line there continues the command above it)."""
    root = typer.main.get_command(app)
    quoted = []
    for m in re.finditer(r"`((?:\.venv/bin/)?dinsync(?: [^`]*)?)`", TEXT):
        words = m.group(1).split()
        quoted.append((TEXT.count("\n", 0, m.start()) + 1, m.group(1),
                       next((w for w in words[1:] if w in root.commands), None)))
    listing = TEXT.split("## Commands", 1)[1].split("```", 2)[1]
    command = None
    for line in listing.splitlines():
        words = line.split()
        if words and words[0] == "dinsync":
            command = next((w for w in words[1:2] if w in root.commands), None)
        quoted.append((0, line, command))
    return quoted


def test_every_option_the_readme_quotes_exists():
    root = typer.main.get_command(app)
    general = _options(root) | {"--help"}
    sandbox = _sandbox_options()
    missing = []
    for line, text, command in _quoted_commands():
        options = set(re.findall(r"(?<![\w-])(--[a-z][\w-]*|-[a-z])\b", text))
        known = sandbox if command == "sandbox" else general | (_options(root.commands[command]) if command else set())
        missing += [(line, text, o) for o in sorted(options - known)]
    assert missing == []


def test_every_run_knob_is_named():
    """Each EngineOptions field is read from DINSYNC_<FIELD> (an error hint names DINSYNC_LOCK_TTL_SECONDS):
    the README names each one."""
    from dataclasses import fields

    from dinsync.engine.options import EngineOptions

    knobs = {f.name.upper() for f in fields(EngineOptions)}
    tuning = TEXT.partition("- **Tuning.**")[2].split("\n- ", 1)[0]
    assert {k for k in knobs if f"`{k}`" not in tuning and f"DINSYNC_{k}" not in TEXT} == set()


def test_the_state_queries_run(target):
    block = next(lines for _, lines in _blocks("sql") if any("dinsync.runs" in ln for ln in lines))
    statements = [s for s in "\n".join(block).replace("dinsync.", f'"{target.state_schema}".').split(";") if s.strip()]
    assert len(statements) >= 3
    for sql in statements:
        target.wh.query(sql)


def test_every_state_column_is_documented(target):
    """Each column of the state tables is named in the README's State tables section (the runs
    table's rows, the other tables' paragraphs)."""
    section = TEXT.split("### State tables", 1)[1].split("\n## ", 1)[0]
    undocumented = {}
    for table in ("runs", "rejections", "sync_state", "events", "locks", "meta"):
        start = section.index(f"**`{table}`**")
        end = section.find("**`", start + 5)
        documented = set(re.findall(r"`([a-z_]+)`", section[start:end if end > 0 else None]))
        columns = target.wh.query(
            "select column_name from information_schema.columns where table_schema = "
            f"'{target.state_schema}' and table_name = '{table}'").column(0).to_pylist()
        assert columns, table
        missing = set(columns) - documented - ({"key", "value"} if table == "meta" else set())
        if missing:
            undocumented[table] = sorted(missing)
    assert undocumented == {}


def test_the_json_examples_have_the_objects_fields():
    """The run and plan objects the README shows carry exactly the fields of dinsync.Run and
    dinsync.SyncPlan (the CLI's JSON objects)."""
    import dataclasses
    import json

    import dinsync

    shown = {}
    for _, lines in _blocks("json"):
        data = json.loads("\n".join(lines).replace("{run object}", "null"))
        shown["plan" if "samples" in data else "run" if "run_id" in data else "event"] = data
    assert set(shown["run"]) == {f.name for f in dataclasses.fields(dinsync.Run)}
    assert set(shown["plan"]) == {f.name for f in dataclasses.fields(dinsync.SyncPlan)}
    sample = shown["plan"]["samples"]["added"][0]
    assert set(sample) == {"key", "op", "fields", "changed_fields", "rejected"}


def test_the_command_list_has_every_command():
    root = typer.main.get_command(app)
    listing = TEXT.split("## Commands", 1)[1].split("```", 2)[1]
    listed = {line.split()[1] for line in listing.splitlines() if line.startswith("dinsync ")}
    assert set(root.commands) <= listed, set(root.commands) - listed


def test_the_project_layout_says_which_file_names_are_names():
    """`syncs/iterable-customers.yml` (or a name with a space) is refused, exit 3, but the README's
    project layout said only that the file name is the sync name: a new user found the rule in the
    error. The layout states it, as the code checks it."""
    from dinsync.config.base_models import NAME_PATTERN

    assert re.fullmatch(NAME_PATTERN, "Iterable_customers2")
    assert not any(re.fullmatch(NAME_PATTERN, name) for name in ("iterable-customers", "my customers", "café"))
    layout = " ".join(TEXT.split("## A project", 1)[1].split("`dinsync.yml`:", 1)[0].split())
    assert ("names of models and syncs (and destinations) are ASCII letters, digits and underscores "
            "(`iterable_customers`, not `iterable-customers`)") in layout


def test_every_environment_variable_the_code_reads_is_named():
    """Each DINSYNC_* variable a module of dinsync reads (its name written whole in a module that
    reads the environment; the run's knobs, DINSYNC_<FIELD>, are the test above's) is named in the
    README: a user finds what the process reads without reading the code."""
    import ast

    package = README.parent / "dinsync"
    read = {}
    for path in package.rglob("*.py"):
        source = path.read_text(encoding="utf-8")
        if "os.environ" not in source and "getenv" not in source:
            continue
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) \
                    and re.fullmatch(r"DINSYNC_[A-Z_]+", node.value):
                read.setdefault(node.value, path.relative_to(package.parent).as_posix())
    assert len(read) >= 8, read  # the scan found the names (DINSYNC_DEBUG, DINSYNC_CACHE_DIR, ...)
    assert {name: where for name, where in read.items() if f"`{name}" not in TEXT} == {}


def _config_models() -> dict[str, type]:
    """Every pydantic model of dinsync.yml and the sync files: warehouses, destinations (generic
    keys, each built-in platform's settings, Splio's sftp block), notifications, dbt, sync files."""
    from pydantic import BaseModel

    from dinsync.config import models, sync_config, warehouse_config
    from dinsync.destinations import registry
    from dinsync.destinations.splio.settings import SftpSettings

    found = {name: cls for module in (warehouse_config, sync_config) for name, cls in vars(module).items()
             if isinstance(cls, type) and issubclass(cls, BaseModel) and cls.__module__ == module.__name__}
    del found["SyncConfig"]  # the loaded sync (the SyncFile's keys, resolved), not a file's keys
    for name in ("ProjectFile", "DestinationOptions", "DbtSettings", "WebhookChannel", "SlackChannel"):
        found[name] = getattr(models, name)
    destinations = registry()
    for name in destinations:
        if destinations[name].settings_model is not None:
            found[f"destination {name}"] = destinations[name].settings_model
    found["SftpSettings"] = SftpSettings
    return found


def test_every_config_key_is_documented():
    """Each key dinsync.yml or a sync file accepts is in the README: in a yaml example (as a key, or
    named in its comments) or quoted (`key`). (That each key the README shows exists is
    test_every_config_example_loads.)"""
    examples = "\n".join("\n".join(lines) for _, lines in _blocks("yaml"))
    models = _config_models()
    assert len(models) >= 15, sorted(models)
    undocumented = []
    for name, cls in models.items():
        for field, info in cls.model_fields.items():
            key = info.alias or field
            if not (re.search(rf"(?<![\w.-]){re.escape(key)}(?![\w-])", examples)
                    or f"`{key}`" in TEXT or f"`{key}:" in TEXT):
                undocumented.append(f"{name}.{key}")
    assert undocumented == []


def test_every_table_a_sync_creates_is_named():
    """The tables a sync's planner names `<prefix>_<sync>` (its state, and the scratch tables that
    live in the state schema where the warehouse has no scratch database) are those the README says
    dinsync refuses when it did not create them, and the longest prefix is the one it names."""
    from dinsync.diff.spec import LONGEST_PREFIX, SCRATCH_TABLES, STATE_TABLES

    section = TEXT.split("- **State in the warehouse**", 1)[1].split("\n- **", 1)[0].split("\n## ", 1)[0]
    assert [p for p in (*STATE_TABLES, *SCRATCH_TABLES) if f"`{p}_<sync>`" not in section] == []
    assert f"(`{LONGEST_PREFIX}_<sync>` is the longest)" in TEXT


def test_every_meta_key_is_documented():
    """Each kind of key a run records in the `meta` table (`<kind>:<sync>`, engine/records.py) is in
    the State tables section's paragraph on `meta`."""
    import ast

    source = (README.parent / "dinsync" / "engine" / "records.py").read_text(encoding="utf-8")
    kinds = {node.values[0].value.rstrip(":") for node in ast.walk(ast.parse(source))
             if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant)
             and re.fullmatch(r"[a-z_]+:", str(node.values[0].value))}
    assert len(kinds) >= 8, kinds
    section = TEXT.split("### State tables", 1)[1].split("\n## ", 1)[0]
    meta = section[section.index("**`meta`**"):]
    assert {k for k in kinds if f"`{k}:<" not in meta} == set()


def test_every_serve_event_is_listed():
    """The JSON lines of `dinsync serve` carry the events the README lists, and only those."""
    import ast

    events = set()
    for path in (README.parent / "dinsync" / "ops").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "emit" and node.args \
                    and isinstance(node.args[0], ast.Constant):
                events.add(node.args[0].value)
    listed = TEXT.split('JSON lines: `{"at", "event": ', 1)[1].split(",", 1)[0]
    assert events == set(re.findall(r'"([a-z_]+)"', listed))


def test_every_option_of_a_command_is_in_the_command_list():
    """The reverse of test_every_option_the_readme_quotes_exists: each option of each command is in
    the Commands list (the global --project-dir and --json, and --help, are in the text below it;
    a `--no-` flag's negation goes with its flag; the sandboxes' fault options are `dinsync sandbox
    PLATFORM --help`'s, as the README says)."""
    root = typer.main.get_command(app)
    listing = TEXT.split("## Commands", 1)[1].split("```", 2)[1]
    general = TEXT.split("## Commands", 1)[1].split("**Choosing syncs.**", 1)[0]
    missing = {}
    for name, command in root.commands.items():
        if name == "sandbox":
            continue
        options = {o for p in command.params for o in p.opts if o.startswith("--")}
        absent = sorted(o for o in options if o not in listing and not (o in ("--project-dir", "--json", "--help")
                                                                          and f"`{o}" in general))
        if absent:
            missing[name] = absent
    assert missing == {}
