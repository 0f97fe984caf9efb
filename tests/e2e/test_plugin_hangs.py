"""A destination plugin's hook that never returns: the run (and `dinsync validate`) stops once
its time limit (DINSYNC_HOOK_SECONDS) is over, naming the plugin and the hook; what the plugin
acknowledged is committed, nothing else, and the next run sends the rest."""
from __future__ import annotations

import json
import sys

import pytest
from typer.testing import CliRunner

from dinsync import destinations
from dinsync.cli import app
from tests.e2e.test_plugin_outcomes import PLUGIN, Project

ALL = {f"p{i}@example.com" for i in range(2, 6)}  # (p1 is refused by prepare)
NAMED = "destination plugin onebyone (judge_plugin.OneByOne): its {}() did not return within 1 s, given up"


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.setenv("DINSYNC_HOOK_SECONDS", "1")
    monkeypatch.setenv("DINSYNC_OUTCOME_TIMEOUT_SECONDS", "0.5")
    monkeypatch.setenv("JUDGE_HANG_SECONDS", "8")
    yield Project(tmp_path / "proj", monkeypatch)
    sys.modules.pop("judge_plugin", None)
    destinations._plugins.cache_clear()


@pytest.mark.parametrize("hook, acknowledged", [
    ("__init__", set()),
    ("prepare", set()),
    ("begin_run", set()),
    ("deliver:p4@example.com", {"p2@example.com", "p3@example.com"}),  # (one request at a time, in key order)
    ("finish_run", ALL),
])
def test_a_hook_that_never_returns_stops_the_run_naming_it(project, monkeypatch, hook, acknowledged):
    """Before, `dinsync sync` waited forever."""
    monkeypatch.setenv("JUDGE_HANGS", hook)
    data = project.sync()
    run = data["run"]
    assert (data["exit_code"], run["status"]) == (1, "failed"), data
    assert run["error"] == NAMED.format(hook.partition(":")[0]), run["error"]
    if hook != "__init__":  # (stopped before the sync's state was made)
        assert project.acknowledged() == acknowledged
    monkeypatch.delenv("JUDGE_HANGS")
    again = project.sync()
    assert (again["exit_code"], again["run"]["acknowledged"]) == (0, len(ALL - acknowledged))
    assert project.acknowledged() == ALL


def test_a_settle_that_never_returns_leaves_its_rows_pending(project, monkeypatch):
    monkeypatch.setenv("JUDGE_ANSWERS", json.dumps({"p4@example.com": {"pending": "job-1"}}))
    monkeypatch.setenv("JUDGE_HANGS", "settle")
    data = project.sync()
    assert (data["exit_code"], data["run"]["error"]) == (1, NAMED.replace("1 s", "1.5 s").format("settle"))
    assert project.acknowledged() == ALL - {"p4@example.com"}  # the outcome of p4 is still awaited
    monkeypatch.setenv("JUDGE_HANGS", "resolve")  # the next run reads it: its resolve() hangs
    data = project.sync()
    assert (data["exit_code"], data["run"]["error"]) == (1, NAMED.replace("1 s", "1.5 s").format("resolve"))
    monkeypatch.delenv("JUDGE_HANGS")
    monkeypatch.setenv("JUDGE_SETTLED", json.dumps({"ok": ["p4@example.com"]}))
    data = project.sync()
    assert (data["exit_code"], data["run"]["acknowledged"]) == (0, 1)
    assert project.acknowledged() == ALL


def test_a_transport_that_never_opens_stops_the_run_naming_it(project, monkeypatch):
    """Before, `async with transport` waited forever for a plugin's __aenter__ (an SFTP login)."""
    monkeypatch.setenv("JUDGE_HANGS", "__aenter__")
    data = project.sync()
    assert (data["exit_code"], data["run"]["error"]) == (1, (
        "destination plugin onebyone (judge_plugin.OneByOne): its transport's __aenter__() did not return "
        "within 1 s, given up"))
    assert project.acknowledged() == set()


def _validate(project) -> tuple[int, list[dict]]:
    sys.modules.pop("judge_plugin", None)
    destinations._plugins.cache_clear()
    result = CliRunner().invoke(app, ["--project-dir", str(project.root), "--json", "validate"])
    return result.exit_code, json.loads(result.stdout).get("issues", [])


def test_validate_gives_up_a_preflight_that_never_returns(project):
    """Before, `dinsync validate` waited forever."""
    (project.root / "plugin" / "judge_plugin.py").write_text(
        PLUGIN + "\n\nasync def preflight(self, transport, sync):\n    await forever()\n\n\n"
                 "OneByOne.preflight = preflight\n")
    code, [issue] = _validate(project)
    assert code == 3
    assert issue["message"] == "pre-flight check of sync people failed: " + NAMED.format("preflight")
    assert issue["file"] == "syncs/people.yml"
    data = project.sync()
    assert (data["exit_code"], data["run"]["error"]) == (1, NAMED.format("preflight"))
    assert project.acknowledged() == set()


def test_validate_gives_up_settings_validators_that_never_return(project):
    (project.root / "plugin" / "judge_plugin.py").write_text(PLUGIN + '''

import pydantic


class Settings(pydantic.BaseModel):
    colour: str = "blue"

    @pydantic.field_validator("colour")
    @classmethod
    def _slow(cls, value):
        import time
        time.sleep(8)
        return value


OneByOne.settings_model = Settings
''')
    (project.root / "dinsync.yml").write_text(project.root.joinpath("dinsync.yml").read_text()
                                              .replace("concurrency: 1}", "concurrency: 1, colour: red}"))
    code, [issue] = _validate(project)
    assert code == 3
    assert issue["message"] == ("destination plugin onebyone (judge_plugin.OneByOne): the validators of its "
                                "settings_model did not return within 1 s, given up")
    assert (issue["file"], issue["line"]) == ("dinsync.yml", 4)
