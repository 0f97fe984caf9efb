"""Text from data shown on the terminal: control characters escaped, markup inert."""
from __future__ import annotations

import io

from rich.console import Console

from dinsync.terminal import escape, visible


def test_control_characters_are_escaped_newlines_tabs_and_unicode_kept():
    assert visible("a\x1b]0;t\x07\r\x00\x7f\x9b\n\tZoë 🎉") == "a\\x1b]0;t\\x07\\x0d\\x00\\x7f\\x9b\n\tZoë 🎉"
    assert visible("plain") == "plain"


def test_escaped_text_prints_as_written_inside_markup():
    buf = io.StringIO()
    Console(file=buf, force_terminal=True, color_system=None).print(
        "[bold]key:[/] " + escape("[red]x[/red]\x1b[2J"), highlight=False)
    assert buf.getvalue() == "key: [red]x[/red]\\x1b[2J\n"


def test_a_plan_prints_its_notes(capsys):
    from dinsync.terminal import print_plan

    entry = {"sync": "users", "added": 0, "changed": 0, "removed": 0, "unchanged": 3, "null_keys": 0,
             "duplicate_rows": 0, "duplicate_keys": 0, "field_changes": {}, "duplicates": [],
             "samples": {"added": [], "changed": [], "removed": []},
             "notes": ["the plan needed more memory than warehouse.memory_limit: it ran again with 384MB\x1b[2J"]}
    print_plan(entry)
    out = capsys.readouterr().out
    assert "  note: the plan needed more memory than warehouse.memory_limit: it ran again with 384MB\\x1b[2J" in out
