"""Installed destination plugins (entry points of packages), one of them broken: a run loads
only the plugin its project names, and a broken one is reported when it is the one asked for,
and listed with its error where the types are listed."""
from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dinsync import destinations
from dinsync.cli import app
from tests.e2e.test_plugin_outcomes import Project

BROKEN_IMPORT = "raise RuntimeError('the broken plugin does not import')\n"


def _package(site: Path, name: str, entry_points: bytes) -> None:
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_bytes(entry_points)


@pytest.fixture
def installed(tmp_path, monkeypatch):
    """judge_plugin's OneByOne installed as entry point `onebyone`, beside a package whose plugin
    raises on import and two whose entry-point metadata cannot be read."""
    project = Project(tmp_path / "proj", monkeypatch)
    monkeypatch.delenv("DINSYNC_DESTINATION_MODULES")
    site = tmp_path / "site"
    site.mkdir()
    (site / "broken_plugin.py").write_text(BROKEN_IMPORT)
    _package(site, "judge-plugin", b"[dinsync.destinations]\nonebyone = judge_plugin:OneByOne\n")
    _package(site, "broken-plugin", b"[dinsync.destinations]\nbroken = broken_plugin:Broken\n")
    _package(site, "garbled-plugin", b"[dinsync.destinations]\nno equals sign here\n")
    _package(site, "latin-plugin", b"[dinsync.destinations]\ncaf\xe9 = latin:Cafe\n")
    monkeypatch.syspath_prepend(str(site))
    sys.modules.pop("broken_plugin", None)
    destinations._plugins.cache_clear()
    yield project
    sys.modules.pop("broken_plugin", None)
    destinations._plugins.cache_clear()


def _name_type(project, kind: str) -> None:
    yml = project.root / "dinsync.yml"
    yml.write_text(yml.read_text().replace("type: onebyone", f"type: {kind}"))


def _validate(project) -> tuple[int, list[dict]]:
    destinations._plugins.cache_clear()
    result = CliRunner().invoke(app, ["--project-dir", str(project.root), "--json", "validate"])
    return result.exit_code, json.loads(result.stdout).get("issues", [])


def test_a_broken_plugin_package_does_not_block_a_project_naming_another(installed):
    """Before, every project naming a plugin failed (exit 3) on the first broken package installed:
    'destination plugin broken_plugin:Broken ... cannot be loaded' for the import, and the
    metadata that cannot be read raised out of importlib.metadata.entry_points()."""
    data = installed.sync()
    assert data["exit_code"] == 0, data
    assert (data["run"]["status"], data["run"]["acknowledged"]) == ("success", 4)
    assert "broken_plugin" not in sys.modules  # only the plugin named was imported


def test_the_broken_plugin_a_project_names_is_reported(installed):
    _name_type(installed, "broken")
    code, [issue] = _validate(installed)
    assert code == 3
    assert issue["message"] == ("destination plugin broken_plugin:Broken (entry point 'broken' of package "
                                "broken-plugin) cannot be loaded: RuntimeError: the broken plugin does not import")
    assert (issue["file"], issue["line"]) == ("dinsync.yml", 4)


def test_an_unknown_type_lists_the_plugins_that_cannot_be_loaded_with_their_errors(installed):
    _name_type(installed, "onebyon")
    code, [issue] = _validate(installed)
    assert code == 3
    assert issue["message"] == "unknown destination type 'onebyon'"
    hint = issue["hint"]
    assert "did you mean 'onebyone'?" in hint and "attentive, attio, iterable, onebyone, splio" in hint, hint
    assert ("destination plugin broken_plugin:Broken (entry point 'broken' of package broken-plugin): "
            "RuntimeError: the broken plugin does not import") in hint
    assert "package garbled-plugin: its entry points cannot be read (TypeError" in hint, hint
    assert "package latin-plugin: its entry points cannot be read (UnicodeDecodeError" in hint, hint
