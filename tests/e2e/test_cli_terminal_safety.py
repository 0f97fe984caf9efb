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


def test_text_output_on_a_terminal_that_cannot_write_a_character_does_not_fail(project):
    """A terminal in a non-UTF-8 locale (LANG=fr_FR.ISO-8859-1; PYTHONIOENCODING=latin-1 stands for
    it here) cannot write an emoji of the data, nor the `…` rich ends a cut cell with: `plan`,
    `runs` and `status` failed with 'unexpected error: UnicodeEncodeError' (exit 1) and printed
    nothing. Such a character is shown as `?`; --json output is ASCII and unchanged."""
    import os
    import subprocess
    import sys

    project.sql("insert into main.customers values (90, 'zoe@example.com', 'u-90', 'Zoë 🎉', 'free', 1)")
    env = dict(os.environ, PYTHONIOENCODING="latin-1")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), *args],
                              env=env, capture_output=True, timeout=120)

    plan = cli("plan", "--samples", "30")
    assert plan.returncode == 0, plan.stderr
    assert 'firstName="Zoë ?"'.encode("latin-1") in plan.stdout
    project.sql("insert into main.customers select 100 + i, 'dup@example.com', 'u', 'n', 'free', 1 from range(5) t(i)")
    sync = cli("sync")  # fails (duplicated keys), with an error the run log's table cuts with `…`
    assert sync.returncode == 1 and b"unexpected error" not in sync.stderr, sync.stderr
    for command in ("runs", "status"):
        shown = cli(command)
        assert shown.returncode == 0 and b"duplicated" in shown.stdout, (command, shown.stderr)
    assert json.loads(cli("--json", "plan", "--samples", "30").stdout)["plans"][0]["added"] >= 21


def test_text_output_in_the_c_locale_without_utf8_mode_does_not_fail(project):
    """LC_ALL=C with Python's UTF-8 mode off (PYTHONUTF8=0, as some images and wrappers set it):
    stdout is ASCII with the `surrogateescape` error handler, which fails on any other character
    like the strict one: `plan`, `rejections` and `runs` of data holding 'Zoë 🎉' or an accented
    key ended with 'unexpected error: UnicodeEncodeError' (exit 1). Such a character is `?` there too."""
    import os
    import subprocess
    import sys

    project.sql("insert into main.customers values (90, 'zoë@@exämple', 'u-90', 'Zoë 🎉', 'free', 1)")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("LC_", "LANG", "PYTHONIOENCODING"))}
    env.update(LC_ALL="C", PYTHONUTF8="0")

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), *args],
                              env=env, capture_output=True, timeout=120)

    plan = cli("plan", "--samples", "30")
    assert plan.returncode == 0, plan.stderr
    assert b'firstName="Zo? ?"' in plan.stdout
    assert cli("sync").returncode == 0  # its key is no valid email: rejected, with a reason quoting it
    for command in ("rejections", "runs", "status"):
        shown = cli(command)
        assert shown.returncode == 0 and b"unexpected" not in shown.stderr, (command, shown.stderr)
    assert b"zo?@@ex?mple" in cli("rejections").stdout
