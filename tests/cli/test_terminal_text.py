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
    from dinsync.terminal import print_plan, reset

    reset()  # consoles bound to this test's captured stdout (not to an earlier test's, closed since)
    entry = {"sync": "users", "added": 0, "changed": 0, "removed": 0, "unchanged": 3, "null_keys": 0,
             "duplicate_rows": 0, "duplicate_keys": 0, "field_changes": {}, "duplicates": [],
             "samples": {"added": [], "changed": [], "removed": []},
             "notes": ["the plan needed more memory than warehouse.memory_limit: it ran again with 384MB\x1b[2J"]}
    print_plan(entry)
    out = capsys.readouterr().out
    assert "  note: the plan needed more memory than warehouse.memory_limit: it ran again with 384MB\\x1b[2J" in out


def _plan_entry(samples: list[dict]) -> dict:
    return {"sync": "users", "added": len(samples), "changed": 0, "removed": 0, "unchanged": 0, "null_keys": 0,
            "duplicate_rows": 0, "duplicate_keys": 0, "field_changes": {}, "duplicates": [],
            "samples": {"added": samples, "changed": [], "removed": []}, "notes": []}


def test_a_plan_shows_each_sample_row_on_one_line_with_its_unicode_readable(capsys):
    from dinsync.terminal import print_plan, reset

    reset()  # consoles bound to this test's captured stdout
    samples = [{"key": "a\nb@x.com", "op": "added", "fields": {"note": "Zoë 👨‍👩‍👧 \u202eevil\u2028x"},
                "changed_fields": ["note"]},
               {"key": "c@x.com", "op": "added", "fields": {"note": "line1\r\nline2\ttab"}, "changed_fields": ["note"]}]
    print_plan(_plan_entry(samples))
    lines = capsys.readouterr().out.splitlines()
    [first] = [line for line in lines if "b@x.com" in line]
    assert "a\\nb@x.com" in first  # the key's newline shown, not a second table line
    assert 'note="Zoë 👨‍👩‍👧 \\u202eevil\\u2028x"' in first  # not "Zo\\u00eb \\ud83d\\udc68..."
    assert not any(line.strip() == "b@x.com" for line in lines)
    [second] = [line for line in lines if "c@x.com" in line]
    assert 'note="line1\\r\\nline2\\ttab"' in second


def test_a_plan_says_how_many_rows_its_samples_leave_out(capsys):
    """`dinsync plan` showed 3 sample rows under "+4 added" without saying the fourth exists."""
    from dinsync.terminal import print_plan, reset

    reset()
    row = lambda k: {"key": f"{k}@x.com", "op": "added", "fields": {"plan": "pro"}, "changed_fields": ["plan"]}
    entry = _plan_entry([row("a"), row("b"), row("c")]) | {"added": 4, "removed": 2}
    entry["samples"]["removed"] = [{"key": "z@x.com", "op": "removed", "fields": {}, "changed_fields": []}]
    print_plan(entry)
    assert "  shown: 3 of 4 added, 1 of 2 removed (--samples N shows more)" in capsys.readouterr().out.splitlines()
    print_plan(_plan_entry([row("a")]))  # every row shown: no such line
    assert "shown:" not in capsys.readouterr().out


def test_rejections_show_a_key_and_reason_holding_line_breaks_on_one_line(capsys):
    from dinsync.terminal import print_rejections, reset

    reset()
    print_rejections([{"rejected_at": "2026-01-01T00:00:00", "run_id": "r1", "key": "a\nb@x.com", "field": "email",
                       "status": "rejected", "reason": "key 'a\nb@x.com' is not a valid email: whitespace\r\n"}])
    out = capsys.readouterr().out
    assert "a\\nb@x.com" in out and "whitespace\\r\\n" in out
    assert not any(line.strip("│ ").startswith("b@x.com") for line in out.splitlines())


def test_long_messages_stay_on_one_line_when_piped(capsys):
    """Piped (CI logs, `| grep`), a message longer than the 200 columns tables are laid out in is
    printed whole on its line: not broken mid-sentence with a trailing space."""
    from types import SimpleNamespace

    from dinsync import terminal

    terminal.reset()
    message = ("model active_customers is blocked: 4 of 6 rows (66.7%) share 2 duplicated matching keys (email) "
               "(e.g. 'ada@example.com', 'grace@example.com'), over the 5% limit of sync iterable_customers; "
               "none of the model's syncs matching on email run, nothing was sent")
    model = SimpleNamespace(model="active_customers", dbt_models=[], status="blocked", rows=6,
                            syncs=["iterable_customers"], keys=[], messages=[message], message_statuses=["blocked"])
    terminal.print_check([model])
    terminal.note("sync iterable_customers paused (credentials): " + "x" * 250)
    captured = capsys.readouterr()
    assert f"  blocked: {message}\n" in captured.out
    assert f"note: sync iterable_customers paused (credentials): {'x' * 250}\n" == captured.err
    terminal.reset()


def _run(status: str, warnings: list[str], error: str | None) -> dict:
    counts = dict.fromkeys(("added", "changed", "removed", "sent", "acknowledged", "rejected", "not_found",
                            "failed"), 0)
    return {"run_id": "r1", "started_at": "2026-12-05T12:00:00.000Z", "status": status, "seconds": 0.4,
            "segment_rows": 10, "warnings": warnings, "error": error, **counts}


def test_status_and_runs_say_why_a_run_failed_before_its_warnings(capsys):
    """A failed run's error (401: the key was refused) comes first in `status`'s why and in `runs`:
    its warnings (a few duplicated keys, common) used to hide it."""
    from dinsync import terminal

    terminal.reset()
    run = _run("failed", ["model m: 2 of 300 rows share 1 duplicated matching key"],
               "attentive: Attentive refused the API key (HTTP 401)")
    terminal.print_syncs([{"sync": "users", "enabled": True, "paused": False, "paused_by": None, "culprit": None,
                           "reason": None, "state": "failed", "parked": 0, "last_run": run}])
    terminal.print_runs([run])
    out = capsys.readouterr().out
    assert out.count("Attentive refused the API key") == 2, out
    terminal.reset()


def test_a_runs_line_counts_one_request_in_the_singular(capsys):
    from dinsync import terminal

    terminal.reset()
    for n in (1, 2):
        terminal.print_run({**_run("success", [], None), "sync": "users", "requests": n, "throttled": 0, "hint": None})
    out = capsys.readouterr().out
    assert "| 1 request, 0 throttled" in out and "| 2 requests, 0 throttled" in out, out
    terminal.reset()


def _history_on_a_terminal(monkeypatch, width: int, status: str, error: str | None, syncs: list[tuple[str, str]]):
    """What `status` (of `syncs`: (name, state)), `runs` and `rejections` print on a terminal of `width` columns."""
    from dinsync import terminal

    buf = io.StringIO()
    monkeypatch.setitem(terminal._consoles, "stdout", terminal._redacting_console()(
        file=buf, width=width, force_terminal=True, color_system=None))
    run = {"sync": "attio_people", "run_id": "20261206T134237-1a2b3c4d", "status": status,
           "started_at": "2026-12-06T13:42:37.123Z", "seconds": 0.48, "added": 1, "changed": 7, "removed": 10,
           "segment_rows": 50, "sent": 8, "acknowledged": 7, "rejected": 1, "not_found": 0, "failed": 0,
           "warnings": [] if error else ["1 of 8 rows (12.5%) were rejected or not found (threshold 5.0%)"],
           "error": error}
    terminal.print_syncs([{"sync": name, "enabled": True, "state": state, "paused": False, "paused_by": None,
                           "culprit": None, "reason": None, "parked": 3, "last_run": {**run, "sync": name, "status": state}}
                          for name, state in syncs])
    terminal.print_runs([run])
    terminal.print_rejections([{"rejected_at": "2026-12-06T13:42:37", "run_id": run["run_id"],
                                "key": "newcomer@company1.example", "field": "plan", "status": "rejected",
                                "reason": "Attio HTTP 400 value_not_found"}])
    return buf.getvalue()


def test_status_runs_and_rejections_keep_names_and_run_ids_whole_on_an_80_column_terminal(monkeypatch):
    """On a terminal of 80 columns rich cut every column of these wide tables evenly: `dinsync
    status` showed `att…` for both attio_companies and attio_people and `suc…` / `war…` for their
    states, `runs` and `rejections` `202…` / `20261206T13…` for the run ids `rejections --run` takes.
    The columns that name something stay whole; the counts and texts wrap or shrink."""
    text = _history_on_a_terminal(monkeypatch, 80, "warning", None,
                                  [("attio_companies", "success"), ("attio_people", "warning")])
    assert max(len(line) for line in text.splitlines()) <= 80, text
    for whole in ("attio_companies", "attio_people", "success", "warning", "20261206T134237-1a2b3c4d", "rejected",
                  "2026-12-06"):
        assert whole in text, (whole, text)
    assert "left out for the terminal's width:" in " ".join(text.split()), text


def test_a_terminal_too_narrow_for_any_table_lists_each_row_field_by_field(monkeypatch):
    """On 40 columns, the columns that stay whole (a run id, a sync name, a state) took the whole
    width even once every other column that may be left out was: rich gave the rest none, and
    `dinsync rejections` showed run ids and statuses with no key and no reason (their columns 0
    wide), `status` no last run and `runs` no error. A terminal too narrow for the whole columns and
    a few characters of each other one gets each row as `field: value` lines, every field shown."""
    text = _history_on_a_terminal(monkeypatch, 40, "failed", "Attio refused the API key",
                                  [("attio_people", "failed")])
    assert max(len(line) for line in text.splitlines()) <= 40, text
    flat = " ".join(text.split())
    for shown in ("newcomer@company1.example", "reason: Attio HTTP 400 value_not_found", "field: plan",
                  "20261206T134237-1a2b3c4d", "why: Attio refused the API key", "parked: 3",
                  "error / warnings: Attio refused the API key", "started (UTC): 2026-12-06 13:42:37"):
        assert shown in flat, (shown, text)
    assert "left out" not in flat, text


def test_piped_history_is_one_line_per_row_with_every_column(monkeypatch):
    """Piped or redirected (`dinsync rejections --limit 10000 > rows.txt`, `| grep`), the tables
    were laid out by rich at 200 columns: 2.7 ms a row on a loaded 2-core machine (27 s for 10,000
    rejections), and a row whose key and reason passed 200 columns was wrapped over several lines,
    so `grep KEY` found the key without its reason. Piped, each row is one line, its columns
    aligned with spaces, every column kept."""
    from dinsync import terminal

    buf = io.StringIO()
    monkeypatch.setitem(terminal._consoles, "stdout", terminal._redacting_console()(file=buf, width=200))
    reason = "Iterable refused the field value because " + "it is far too long to be accepted " * 3
    rows = [{"rejected_at": "2026-12-06T13:42:37", "run_id": "20261206T134237-1a2b3c4d",
             "key": f"{'k' * 40}{i}@example.com", "field": "plan", "status": "rejected", "reason": f"{reason}{i}"}
            for i in range(3)]
    terminal.print_rejections(rows)
    lines = buf.getvalue().splitlines()
    assert lines[0].split() == ["rejected", "at", "(UTC)", "run", "key", "field", "status", "reason"], lines
    assert len(lines) == 4, lines
    for i, line in enumerate(lines[1:]):
        assert line.startswith("2026-12-06 13:42:37  20261206T134237-1a2b3c4d  k"), line
        assert f"{'k' * 40}{i}@example.com  plan" in line and line.endswith(f"{reason}{i}"), line  # whole (see below)
    assert lines[1].index("plan") == lines[0].index("field")  # aligned under their header
    assert not set("│┃━─") & set(buf.getvalue())


def test_a_plans_samples_on_a_narrow_terminal_are_listed_field_by_field(monkeypatch):
    """On 40 columns plan's sample table cut every key and value to a few characters (`ada@example…`,
    `firstName="A…`, `signedUpAt="…`): the values the sync would send, the point of the samples,
    could not be read. A terminal too narrow for the table lists each sample field by field."""
    from dinsync import terminal

    buf = io.StringIO()
    monkeypatch.setitem(terminal._consoles, "stdout", terminal._redacting_console()(
        file=buf, width=40, force_terminal=True, color_system=None))
    fields = {"firstName": "Ada", "lastName": "Lovelace", "signedUpAt": "2024-01-15"}
    terminal.print_plan(_plan_entry([{"key": "ada@example.com", "op": "added", "fields": fields,
                                      "changed_fields": list(fields)}]))
    text = buf.getvalue()
    assert max(len(line) for line in text.splitlines()) <= 40, text
    flat = " ".join(text.split())
    for shown in ("key: ada@example.com", "op: added", 'firstName="Ada"', 'lastName="Lovelace"',
                  'signedUpAt="2024-01-15"'):
        assert shown in flat, (shown, text)


def test_piped_rejections_and_runs_keep_long_keys_reasons_and_errors_whole(capsys):
    """Piped or redirected, `rejections` cut a key at 60 characters and a reason at 120, and `runs`
    an error at 100, as on a terminal: `dinsync rejections | grep KEY` did not find a key of 61
    characters, and a destination's reason lost its end, often the part that says why."""
    from dinsync import terminal

    terminal.reset()
    key = "a-rather-long-local-part-of-an-address." + "x" * 40 + "@example.com"
    reason = ("Iterable HTTP 400 InvalidEmailAddressError: " + "the address was refused by the platform; " * 4
              + "the end that says why: domain has no MX record")
    terminal.print_rejections([{"rejected_at": "2026-12-07T10:00:00", "run_id": "r1", "key": key, "field": "email",
                                "status": "rejected", "reason": reason}])
    error = "could not reach Attentive (GET /v1/me failed after 2 attempt(s), not tried again: " + "y" * 150 + ") END"
    terminal.print_runs([{"sync": "s", "run_id": "20261207T100000-1a2b3c4d", "status": "failed",
                          "started_at": "2026-12-07T10:00:00Z", "seconds": 1.0, "added": 1, "changed": 0, "removed": 0,
                          "segment_rows": 1, "sent": 1, "acknowledged": 0, "rejected": 0, "not_found": 0, "failed": 1,
                          "warnings": [], "error": error}])
    out = capsys.readouterr().out
    assert len(key) > 60 and len(reason) > 120 and len(error) > 100
    [line] = [line for line in out.splitlines() if line.startswith("2026-12-07 10:00:00")]
    assert key in line and line.endswith(reason), line
    assert error in out, out


def test_check_says_one_duplicated_key_in_the_singular(capsys):
    """`dinsync check` of a model with one key on two rows printed "1 duplicated keys on 2 rows"."""
    from types import SimpleNamespace

    from dinsync import terminal

    terminal.reset()
    key = lambda dups, rows: SimpleNamespace(column="email", primary_key=False, syncs=["iterable_users"], null_keys=0,
                                             duplicate_keys=dups, duplicate_rows=rows, duplicate_pct=50.0, limit_pct=5,
                                             status="blocked", sample=[])
    for dups, rows in ((1, 2), (2, 4)):
        model = SimpleNamespace(model="people", dbt_models=[], status="blocked", rows=4, syncs=["iterable_users"],
                                keys=[key(dups, rows)], messages=[], message_statuses=[])
        terminal.print_check([model])
    out = capsys.readouterr().out
    assert "0 NULL, 1 duplicated key on 2 rows = 50.0%" in out, out
    assert "0 NULL, 2 duplicated keys on 4 rows = 50.0%" in out, out
