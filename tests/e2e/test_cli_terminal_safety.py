"""Values from the warehouse never drive the user's terminal: a hostile key or value holding
escape sequences (a window title, a clipboard write, colours) is shown with its control characters
escaped wherever the CLI prints it as text (rejections, warnings, notes, plans). JSON output keeps
the exact values (JSON escapes them)."""
from __future__ import annotations

import json

EVIL = "evil\x1b]0;pwned\x07\x1b[31m\r\x9b@example.com"


def test_hostile_control_characters_are_shown_escaped(project):
    project.sql("insert into main.customers values (90, ?, 'u-90', ?, 'free', 1)", EVIL, "name\x1b[2J")
    outputs = []
    plan = project.cli("plan", json_output=False)
    outputs += [plan.stdout, plan.stderr]
    sync = project.cli("sync", json_output=False)
    assert sync.exit_code == 0 and "rejected 1," in sync.stdout  # its key is not an email
    outputs += [sync.stdout, sync.stderr]
    shown = project.cli("rejections", "iterable_users", json_output=False)
    outputs += [shown.stdout, shown.stderr]
    runs = project.cli("runs", "iterable_users", json_output=False)
    outputs += [runs.stdout, runs.stderr]
    text = "".join(outputs)
    assert "\x1b" not in text and "\x07" not in text and "\r" not in text and "\x9b" not in text
    assert "evil\\x1b]0;pwned\\x07" in shown.stdout  # what the value holds, made visible
    # the JSON document keeps the exact key
    rows = json.loads(project.cli("rejections", "iterable_users").stdout)
    assert EVIL in [r["key"] for r in rows["rejections"]]
