"""What pyproject.toml promises a fresh install: the Pythons it admits can install the dependencies."""
from __future__ import annotations

import importlib.metadata as metadata
import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

PYPROJECT = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text(encoding="utf-8"))


def _floor(spec: str) -> str:
    """The oldest Python `spec` (requires-python, `>=3.X`) admits, as `3.X.0`."""
    found = re.fullmatch(r"\s*>=\s*(\d+)\.(\d+)(?:\.\d+)?\s*", spec)
    assert found, f"requires-python {spec!r} is not of the form >=3.X"
    return f"{found[1]}.{found[2]}.0"


def test_oldest_admitted_python_can_install_every_dependency():
    """requires-python said >=3.10 while duckdb 2.x (the floor of its range) needs 3.11: on 3.10,
    `pip install dinsync` failed deep in the resolver ("No matching distribution found for
    duckdb<3,>=2.0") instead of pip's plain "requires a different Python". Each dependency as
    installed for the suite (within pyproject's ranges) must admit the oldest Python promised."""
    floor = _floor(PYPROJECT["project"]["requires-python"])
    refused = {}
    for line in PYPROJECT["project"]["dependencies"]:
        name = Requirement(line).name
        needs = metadata.metadata(name).get("Requires-Python")
        if needs and floor not in SpecifierSet(needs):
            refused[name] = needs
    assert not refused, f"requires-python admits {floor}, which these dependencies do not: {refused}"


def test_the_suite_keeps_rendered_sql_out_of_the_home_folder(tmp_path_factory):
    """`pytest` (the README's second command) wrote the rendered SQL of its runs into the user's
    ~/.cache/dinsync/sql (7 files after tests/e2e/test_cli_iterable.py alone): it left them behind
    and pruned the user's own entries there. Its cache is pytest's temporary folder."""
    from dinsync.diff.cache import cache_root

    root = cache_root()
    assert root is not None and root.is_relative_to(tmp_path_factory.getbasetemp()), root
