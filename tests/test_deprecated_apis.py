"""dinsync promises Python 3.11 and later, and CI runs 3.11 only: a standard-library call that 3.12 or
3.13 deprecate (or 3.14 removes) passes CI silently and warns, or breaks, for a user on a newer Python.
This scan of dinsync's own code (its syntax tree: docstrings and comments may name them) keeps them out."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "dinsync"

# (attribute, the name it is read from, what to use instead); the name is the last part of the
# expression before the dot (`dt.datetime.utcnow` and `datetime.utcnow` both read `datetime`)
DEPRECATED = {
    ("utcnow", "datetime"): "datetime.now(timezone.utc) (deprecated in 3.12)",
    ("utcfromtimestamp", "datetime"): "datetime.fromtimestamp(t, timezone.utc) (deprecated in 3.12)",
    ("get_event_loop", "asyncio"): "asyncio.get_running_loop() or asyncio.run() (warns in 3.12+ without a loop, "
                                   "raises in 3.14)",
    ("iscoroutinefunction", "asyncio"): "inspect.iscoroutinefunction (deprecated in 3.14)",
    ("set_event_loop_policy", "asyncio"): "asyncio.Runner(loop_factory=...) (deprecated in 3.14)",
    ("getdefaultlocale", "locale"): "locale.getlocale / getencoding (deprecated in 3.11, removed in 3.15)",
    ("find_loader", "pkgutil"): "importlib.util.find_spec (deprecated in 3.12, removed in 3.14)",
    ("ByteString", "typing"): "collections.abc.Buffer or bytes | bytearray (deprecated in 3.12, removed in 3.14)",
    **{(name, "ast"): "ast.Constant (deprecated in 3.8, removed in 3.14)"
       for name in ("Num", "Str", "Bytes", "NameConstant", "Ellipsis")},
}
DEPRECATED_KEYWORDS = {("rmtree", "onerror"): "onexc (onerror is deprecated in 3.12)",
                       ("extractall", None): "filter= (3.12+ warns without one; 3.14 changes the default)"}


def _last_name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def deprecated_uses(source: str, filename: str = "<source>") -> list[str]:
    """`file:line: what (instead)` for each deprecated use in `source`."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Attribute):
            instead = DEPRECATED.get((node.attr, _last_name(node.value)))
            if instead:
                found.append((node.lineno, f"{filename}:{node.lineno}: {_last_name(node.value)}.{node.attr}: use {instead}"))
        elif isinstance(node, ast.Call) and isinstance(node.func, (ast.Attribute, ast.Name)):
            called = _last_name(node.func)
            given = {k.arg for k in node.keywords}
            for (function, keyword), instead in DEPRECATED_KEYWORDS.items():
                if called == function and (keyword in given if keyword else "filter" not in given):
                    found.append((node.lineno, f"{filename}:{node.lineno}: {function}({keyword or ''}...): use {instead}"))
    return [text for _, text in sorted(found)]


def test_the_scan_finds_each_kind_of_deprecated_use():
    """(The scan itself: each form it looks for, in a sample.)"""
    sample = """
import asyncio, ast, datetime as dt, shutil, tarfile
from datetime import datetime
a = dt.datetime.utcnow()
b = datetime.utcfromtimestamp(0)
c = asyncio.get_event_loop()
d = isinstance(x, ast.Num)
shutil.rmtree("x", onerror=print)
tarfile.open("t").extractall("x")
"""
    found = deprecated_uses(sample)
    assert [line.split(":")[1] for line in found] == ["4", "5", "6", "7", "8", "9"], found
    fine = "import asyncio, shutil\nloop = asyncio.get_running_loop()\nshutil.rmtree('x', onexc=print)\n" \
           "from .report import utcnow\nutcnow()\n# datetime.utcnow() in a comment\n"
    assert deprecated_uses(fine) == []


def test_dinsync_uses_no_api_newer_pythons_deprecate():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 100
    found = [use for path in files
             for use in deprecated_uses(path.read_text(encoding="utf-8"), str(path.relative_to(PACKAGE.parent)))]
    assert not found, "\n".join(found)
