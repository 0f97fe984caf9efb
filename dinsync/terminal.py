"""What the CLI writes: redacting consoles, JSON documents, notes, tracebacks, and the text
renderings of plans, runs and the run log.

Every byte goes through `dinsync.redaction`: the consoles mask each text before rich lays it out
and write to redacting streams, and a traceback is formatted to text, redacted, then printed.
rich is imported on first use.
"""
from __future__ import annotations

import json
import math
import re
import sys
from typing import TYPE_CHECKING, Any

from . import redaction

if TYPE_CHECKING:
    from rich.console import Console


class RedactingStream:
    """A text stream that masks registered secrets before writing to `stream`. Bound to the
    stream object itself, not to `sys.stderr` by name: a live progress bar replaces sys.stderr
    with a proxy that writes to our console, which must not write back to the proxy."""

    def __init__(self, stream):
        self.stream = stream

    def write(self, text: str) -> int:
        return self.stream.write(redaction.redact(text))

    def flush(self) -> None:
        self.stream.flush()

    def isatty(self) -> bool:
        return bool(getattr(self.stream, "isatty", lambda: False)())

    def fileno(self) -> int:
        return self.stream.fileno()

    @property
    def encoding(self) -> str:
        return getattr(self.stream, "encoding", None) or "utf-8"


class _CurrentStderr:
    """`sys.stderr` as it is at each write (a live progress display swaps it), through the redactor."""

    def write(self, text: str) -> int:
        return sys.stderr.write(redaction.redact(text))

    def flush(self) -> None:
        sys.stderr.flush()


def redact_library_output() -> None:
    """Route what libraries write to stderr past our consoles through the redactor: logging's
    last-resort handler (a library's WARNING in a process that configured no logging), warnings,
    and uncaught exceptions in threads and in `__del__` (Python's default hooks). For the CLI's
    process only: the Python API leaves a host's logging and hooks alone."""
    import logging
    import threading
    import traceback
    import warnings

    stream = _CurrentStderr()
    last_resort = logging.StreamHandler(stream)  # type: ignore[arg-type]
    last_resort.setLevel(logging.WARNING)
    logging.lastResort = last_resort

    def showwarning(message, category, filename, lineno, file=None, line=None):  # noqa: ARG001
        stream.write(warnings.formatwarning(message, category, filename, lineno, line))

    def thread_excepthook(args) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else threading.get_ident()
        stream.write(f"Exception in thread {name}:\n"
                     + "".join(traceback.format_exception(args.exc_type, args.exc_value, args.exc_traceback)))

    def unraisablehook(unraisable) -> None:
        where = f"{unraisable.err_msg or 'Exception ignored in'}: {unraisable.object!r}\n"
        stream.write(where + "".join(traceback.format_exception(unraisable.exc_type, unraisable.exc_value,
                                                                unraisable.exc_traceback)))

    warnings.showwarning = showwarning
    threading.excepthook = thread_excepthook
    sys.unraisablehook = unraisablehook


# Error handlers that fail on a character the encoding has no byte for: Python's default, and the
# one it gives stdout in the C locale without UTF-8 mode (LC_ALL=C PYTHONUTF8=0), which writes back
# only the undecodable bytes of a file name and fails on 'ë' as the strict one does
_FAILING_ERRORS = ("strict", "surrogateescape")


def replace_unwritable_characters() -> None:
    """Write a character the terminal's encoding has no byte for (an emoji of the data under
    LANG=fr_FR.ISO-8859-1 or LC_ALL=C, the `…` rich ends a cut cell with) as `?`: Python's default
    made the command fail with UnicodeEncodeError and print nothing. For the CLI's process only."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) in _FAILING_ERRORS and hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="replace")
            except (ValueError, OSError):  # (a closed or detached stream)
                pass


_consoles: dict[str, "Console"] = {}


def reset() -> None:
    """Forget the consoles: the next ones bind to sys.stdout / sys.stderr as they are now
    (called once per command invocation; test runners swap the streams)."""
    global KEEP_GOING_ON_BROKEN_PIPE, _told_stdout_closed
    _consoles.clear()
    KEEP_GOING_ON_BROKEN_PIPE = _told_stdout_closed = False


def _console(name: str) -> "Console":
    console = _consoles.get(name)
    if console is None:
        stream = RedactingStream(getattr(sys, name))
        # piped or captured: do not squeeze tables into 80 columns
        console = _redacting_console()(file=stream, width=None if stream.isatty() else 200)  # type: ignore[arg-type]
        _consoles[name] = console
    return console


_RedactingConsole: Any = None
# `sync` and `serve` set it (keep_going_on_broken_pipe): a console whose stream is a closed pipe
# drops what follows instead of rich's SystemExit(1), which, raised inside a run writing a note,
# interrupted the run (recorded failed), and between two syncs skipped the later ones
KEEP_GOING_ON_BROKEN_PIPE = False
_told_stdout_closed = False


def keep_going_on_broken_pipe() -> None:
    """For the commands whose work must not stop when their output's reader goes away (`dinsync
    sync | head -1`, `2>&1 | head`, a log shipper restarted): what cannot be written is dropped,
    stderr says so once (`output_dropped`), and the runs go on."""
    global KEEP_GOING_ON_BROKEN_PIPE
    KEEP_GOING_ON_BROKEN_PIPE = True


def output_dropped(exc: BaseException) -> None:
    """Say once, on stderr if it can still be written, that stdout's reader went away."""
    global _told_stdout_closed
    if _told_stdout_closed:
        return
    _told_stdout_closed = True
    try:
        sys.stderr.write(f"note: stdout is a closed pipe ({type(exc).__name__}): the rest of the output is "
                         "dropped; the runs go on (`dinsync runs` lists them)\n")
        sys.stderr.flush()
    except (OSError, ValueError):  # (stderr is gone too)
        pass


def _redacting_console() -> Any:
    """rich's Console, masking secrets in each text (printed, or a table's cell) before laying it
    out: the stream only sees the lines rich wrapped to the width, in which a secret cut in two
    (at a space, or a token longer than a line) matched no more."""
    global _RedactingConsole
    if _RedactingConsole is None:
        from rich.console import Console

        class RedactingConsole(Console):
            def render_str(self, text: str, **kwargs: Any):
                return super().render_str(redaction.redact(text), **kwargs)

            def print(self, *objects: Any, **kwargs: Any) -> None:
                # piped or captured (CI logs, grep), a line of text is written whole: the 200 columns
                # are for laying out tables, not for breaking a message mid-sentence
                if (kwargs.get("soft_wrap") is None and not self.is_terminal
                        and all(isinstance(o, str) for o in objects)):
                    kwargs["soft_wrap"] = True
                super().print(*objects, **kwargs)

            def on_broken_pipe(self) -> None:
                if KEEP_GOING_ON_BROKEN_PIPE:  # (`sync`, `serve`: lines and notes are dropped, the runs go on)
                    self.quiet = True
                    if self is _consoles.get("stdout"):
                        output_dropped(BrokenPipeError())
                    return
                super().on_broken_pipe()

        _RedactingConsole = RedactingConsole
    return _RedactingConsole


def out() -> "Console":
    return _console("stdout")


def err() -> "Console":
    return _console("stderr")


def emit(data: Any) -> None:
    """A JSON document on stdout (redacted; without rich: a --json command never imports it). With
    `keep_going_on_broken_pipe`, a document stdout cannot take is dropped (said once on stderr):
    `sync --json` exits with its runs' code, not 1 for the output."""
    try:
        write_json(json_text(data, indent=2) + "\n")
    except (OSError, ValueError) as exc:  # (ValueError: a closed file)
        if not KEEP_GOING_ON_BROKEN_PIPE:
            raise
        output_dropped(exc)


def json_line(data: Any) -> str:
    """`data` as one line of JSON, redacted (`serve --json`)."""
    return json_text(data, indent=None)


def json_text(data: Any, indent: int | None) -> str:
    """`data` as JSON whose strings are redacted one by one (see redaction.redact_document): the
    text is not masked again, which would turn a number holding a secret into `***`."""
    return json.dumps(_json_safe(data), indent=indent)


def write_json(text: str) -> None:
    """Already redacted JSON to stdout, past the redacting stream (see json_text)."""
    console = _consoles.get("stdout")
    stream = console.file if console is not None else sys.stdout
    stream = stream.stream if isinstance(stream, RedactingStream) else stream
    stream.write(text)
    stream.flush()


def write_line(text: str) -> None:
    """One line of text to stdout, redacted, its control characters escaped, without rich (`serve`'s
    log lines): rich's console turns a write to a closed pipe into SystemExit(1) and drops every
    later line silently, where `serve` drops the lines, says so once and goes on (an OSError here)."""
    write_json(redaction.redact(visible(text)) + "\n")


def plain_text(value: Any) -> str:
    """The text of a value JSON has no type for (a decimal, a date): a decimal with its digits
    (0.000000000, not str()'s 0E-9; 1E+3 as 1000), bytes (a BLOB, bytea) in base64 as a sync sends
    them (`qgA=`, not Python's `b'\\xaa\\x00'`)."""
    import decimal

    if isinstance(value, decimal.Decimal) and value.is_finite():
        return format(value, "f")
    if isinstance(value, (bytes, bytearray, memoryview)):
        import base64

        return base64.b64encode(bytes(value)).decode("ascii")
    return str(value)


def _json_safe(data: Any) -> Any:
    """`data` with its NaN and infinite floats (a DOUBLE model value in plan samples) as the strings
    "NaN", "Infinity", "-Infinity": json.dumps writes them as bare NaN / Infinity, which is no JSON
    (strict parsers, jq, refuse the whole document); values JSON has no type for as `plain_text`,
    and every string redacted."""
    if isinstance(data, float) and not math.isfinite(data):
        return "NaN" if math.isnan(data) else ("Infinity" if data > 0 else "-Infinity")
    if isinstance(data, dict):
        return {redaction.redact(k) if isinstance(k, str) else k: _json_safe(v) for k, v in data.items()}
    if isinstance(data, (list, tuple)):
        return [_json_safe(v) for v in data]
    if data is None or isinstance(data, (bool, int, float)):
        return data
    return redaction.redact(data if isinstance(data, str) else plain_text(data))


def note(text: str) -> None:
    """A note for the user, on stderr (stdout stays a clean document with --json)."""
    err().print(f"note: {visible(text)}", markup=False, highlight=False)


# Control characters other than newline and tab (C0, DEL, C1): a value from the warehouse or a
# platform's answer holding them (ESC sequences set a window title, write the clipboard, clear the
# screen; CR overwrites a line) would drive the user's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def visible(text: str) -> str:
    """Text for the terminal with its control characters escaped (`\\x1b`), newlines and tabs kept."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


# In a table cell, data is one line: its line breaks (also Unicode's), tabs and the bidirectional
# overrides (which reorder what follows them on screen) are shown escaped too.
_CELL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_CELL_NAMES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def cell(text: str, limit: int) -> str:
    """Data (a key, a value, a reason) for a table cell: cut to `limit` characters, on one line,
    control characters escaped (`\\n`, `\\x1b`, `\\u202e`), rich markup inert."""
    from rich.markup import escape as markup_escape

    def name(m: re.Match) -> str:
        ch = m.group()
        return _CELL_NAMES.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")

    return markup_escape(_CELL.sub(name, _cut(text, limit)))


def print_traceback(exc: BaseException) -> None:
    """The traceback of `exc` with its causes, formatted to text, redacted, then printed."""
    import traceback

    text = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    RedactingStream(sys.stderr).write(text)


def escape(text: str) -> str:
    """Text from data (values, reasons, errors) inside a rich markup string: markup and control
    characters escaped."""
    from rich.markup import escape

    return escape(visible(text))


def plural(n: int, word: str) -> str:
    """`1 request`, `2 requests`."""
    return f"{n:,} {word}{'' if n == 1 else 's'}"


def print_plan(entry: dict) -> None:
    from rich import box
    from rich.measure import Measurement
    from rich.table import Table

    out().print(f"[bold]{entry['sync']}[/]: [green]+{entry['added']:,} added[/], [yellow]~{entry['changed']:,} "
                f"changed[/], [red]-{entry['removed']:,} removed[/], {entry['unchanged']:,} unchanged; withheld: "
                f"{plural(entry['null_keys'], 'NULL key')}, {plural(entry['duplicate_rows'], 'row')} of "
                f"{plural(entry['duplicate_keys'], 'duplicated key')}"
                + (f", {plural(entry['parked'], 'parked row')} (rejected earlier)" if entry.get("parked") else ""),
                highlight=False)
    if entry["changed"]:
        counts = ", ".join(f"{field} {n:,}" for field, n in entry["field_changes"].items())
        out().print(f"  changed rows per field: {visible(counts)}", markup=False, highlight=False)
    rows = [row for op in ("added", "changed", "removed") for row in entry["samples"][op]]
    if rows:
        headers = ["key", "op", "changed fields (values as sent)"]
        cells = []
        for row in rows:
            if row["op"] == "removed":
                fields = "(leaves the snapshot; nothing is sent)"
            else:
                fields = ", ".join([f"rejected ({r['reason']})" for r in row.get("rejected", ())]
                                   + [f"{f}={sample_text(row['fields'][f])}" for f in row["changed_fields"]
                                      if f in row["fields"]])
            cells.append([cell(str(row["key"]), 60), row["op"], cell(fields, 120)])
        table = Table(*headers, box=box.SIMPLE, padding=(0, 1))
        for values in cells:
            table.add_row(*values)
        # a terminal too narrow for the table's words (40 columns) cut every key and value to a few
        # characters (`firstName="A…`): the samples are listed field by field there
        narrow = out().is_terminal and Measurement.get(out(), out().options.update_width(1 << 20),
                                                       table).minimum > out().width
        out().print(_records(headers, cells) if narrow else table)
        shown = [f"{len(entry['samples'][op]):,} of {entry[op]:,} {op}" for op in ("added", "changed", "removed")
                 if entry[op] > len(entry["samples"][op])]
        if shown:
            out().print(f"  shown: {', '.join(shown)} (--samples N shows more)", markup=False, highlight=False)
    for dup in entry["duplicates"]:
        out().print(f"  duplicated key {_cut(str(dup['key']), 60)!r}: {dup['rows']} rows withheld",
                    markup=False, highlight=False)
    for note in entry.get("notes", ()):
        out().print(f"  note: {visible(note)}", markup=False, highlight=False)


def sample_text(value: Any) -> str:
    """A sample's value as the JSON a sync sends: a Decimal (a number with more digits than a float
    holds, dinsync.engine.preview) as its digits, unquoted."""
    import decimal

    if isinstance(value, decimal.Decimal):
        return str(value)
    return json.dumps(value, default=plain_text, ensure_ascii=False)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def print_run(r: dict) -> None:
    colour = {"success": "green", "warning": "yellow", "failed": "red"}.get(r["status"], "white")
    if r["run_id"] is None:
        out().print(f"[bold]{r['sync']}[/] [red]{r['status']}[/] (not started)", highlight=False)
    else:
        out().print(
            f"[bold]{r['sync']}[/] [{colour}]{r['status']}[/] in {r['seconds'] or 0:.2f}s: +{r['added']} "
            f"~{r['changed']} -{r['removed']} | sent {r['sent']}, acknowledged {r['acknowledged']}, "
            f"rejected {r['rejected']}, not found {r['not_found']}, failed {r['failed']} | "
            f"{plural(r['requests'], 'request')}, {r['throttled']} throttled (run {r['run_id']})", highlight=False)
    for w in r["warnings"]:
        out().print("  [yellow]warning:[/] " + escape(w), highlight=False)
    if r["error"]:
        err().print(f"  [red]error:[/] {escape(r['sync'])}: " + escape(r["error"]), highlight=False)
    if r["hint"]:
        err().print("  [dim]hint: " + escape(r["hint"]) + "[/]", highlight=False)


def run_why(run: dict) -> str:
    """A run's error (why it failed) first, then its warnings: a failed run's warnings (a few
    duplicated keys) must not hide its error."""
    return "; ".join(([run["error"]] if run.get("error") else []) + list(run.get("warnings") or []))


def seconds_cell(run: dict | None) -> str:
    """A run's duration for a table cell: empty when it has none (running, abandoned, no run)."""
    seconds = (run or {}).get("seconds")
    return "" if seconds is None else f"{seconds:.2f}"


# The least a column that is not kept whole must get for a table to be worth showing: narrower than
# this beside the whole ones, the rows are listed field by field (`_records`).
MIN_CELL_WIDTH = 8


def _fitted_table(headers: list[str], rows: list[list[str]], *, whole: tuple[str, ...],
                  left_out_first: tuple[str, ...]) -> Any:
    """A table of `rows` that fits the console's width without cutting a word: the columns in
    `whole` (what names a row: a sync, a run, a state) never wrap, and while the table cannot fit,
    the columns of `left_out_first` are left out, in that order, and its caption says which (on 80
    columns rich cut every column of these wide tables alike: `attio_companies` and `attio_people`
    both read `att…`, a run id `202…`). A terminal too narrow for the whole columns and
    MIN_CELL_WIDTH of each other one left gets the rows field by field (`_records`): on 40 columns
    the whole columns took it all, and `rejections` showed no key and no reason. (A terminal's:
    piped output is `_plain_table`'s.)"""
    from rich.measure import Measurement
    from rich.table import Table

    console = out()
    shown = list(headers)
    while True:
        table = Table(*shown, caption=None)
        for column in table.columns:
            column.no_wrap = column.header in whole
        for row in rows:
            table.add_row(*(value for header, value in zip(headers, row) if header in shown))
        left_out = [h for h in headers if h not in shown]
        if left_out:
            table.caption = f"left out for the terminal's width: {', '.join(left_out)} (--json has every field)"
        # (measured without the console's width, to which a measurement is clamped)
        fits = Measurement.get(console, console.options.update_width(1 << 20), table).minimum <= console.width
        more = [h for h in left_out_first if h in shown]
        if fits:
            return table
        if not more:
            return table if _whole_columns_leave_room(console, headers, rows, shown, whole) else _records(headers, rows)
        shown.remove(more[0])


def print_table(headers: list[str], rows: list[list[str]], *, whole: tuple[str, ...],
                left_out_first: tuple[str, ...]) -> None:
    """`status`, `runs`, `rejections`: on a terminal, a table fitted to its width (`_fitted_table`);
    piped or redirected, one line per row with every column (`_plain_table`)."""
    console = out()
    if console.is_terminal:
        console.print(_fitted_table(headers, rows, whole=whole, left_out_first=left_out_first))
        return
    try:
        console.file.write(_plain_table(headers, rows))
        console.file.flush()
    except BrokenPipeError:  # (`| head -1`: as rich's console does)
        console.on_broken_pipe()


def _plain_table(headers: list[str], rows: list[list[str]]) -> str:
    """Rows (cells in rich markup) as plain text: one line per row, columns aligned with two spaces
    between them, for files, grep and awk. rich laid out the same rows at 200 columns, 2.7 ms a row
    (27 s for `rejections --limit 10000` on a loaded 2-core machine), and wrapped a row passing 200
    columns over several lines (`grep KEY` found the key without its reason)."""
    from rich.cells import cell_len
    from rich.text import Text

    lines = [headers] + [[Text.from_markup(value).plain if "[" in value else value for value in row] for row in rows]
    widths = [max(cell_len(line[i]) for line in lines) for i in range(len(headers))]
    return "".join("  ".join(value + " " * (width - cell_len(value)) for value, width in zip(line, widths)).rstrip()
                   + "\n" for line in lines)


def _whole_columns_leave_room(console: Any, headers: list[str], rows: list[list[str]], shown: list[str],
                              whole: tuple[str, ...]) -> bool:
    """Whether the `shown` columns of `whole`, at their widest, leave MIN_CELL_WIDTH to each other one
    (a table's borders and padding: 3 a column, and 1)."""
    from rich.text import Text

    def widest(header: str) -> int:
        i = headers.index(header)
        return max([len(header)] + [Text.from_markup(row[i]).cell_len for row in rows])

    needed = sum(widest(h) if h in whole else MIN_CELL_WIDTH for h in shown) + 3 * len(shown) + 1
    return needed <= console.width


def _records(headers: list[str], rows: list[list[str]]) -> Any:
    """Each row as `field: value` lines (every field but the empty ones), a blank line between rows."""
    from rich.console import Group
    from rich.text import Text

    lines: list[Any] = []
    for i, row in enumerate(rows):
        if i:
            lines.append(Text(""))
        lines += [Text.assemble((f"{header}: ", "bold"), Text.from_markup(value))
                  for header, value in zip(headers, row) if value != ""]
    return Group(*lines)


def print_syncs(syncs: list[dict]) -> None:
    """`dinsync status`: one line per sync."""
    if not syncs:
        out().print("no syncs")
        return
    colours = {"success": "green", "warning": "yellow", "failed": "red", "paused": "magenta", "abandoned": "red"}
    headers = ["sync", "state", "last run (UTC)", "seconds", "+added ~changed -removed", "sent", "acked",
               "rejected", "not found", "failed", "parked", "why"]
    rows = []
    for s in syncs:
        r = s["last_run"] or {}
        started = (r.get("started_at") or "")[:19].replace("T", " ")
        counts = f"+{r['added']:,} ~{r['changed']:,} -{r['removed']:,}" if r else ""
        if s["paused"]:
            why = f"paused {'by hand' if s['paused_by'] == 'hand' else 'by itself (' + str(s['culprit']) + ')'}: " \
                  f"{s['reason'] or ''}"
        else:
            why = run_why(r)
        if not s["enabled"]:
            why = "(disabled) " + why
        colour = colours.get(s["state"], "white")
        rows.append([s["sync"], f"[{colour}]{escape(s['state'])}[/]", started,
                     seconds_cell(r), counts,
                     *(f"{r[c]:,}" if r else "" for c in ("sent", "acknowledged", "rejected", "not_found", "failed")),
                     f"{s['parked']:,}", cell(why, 100)])
    print_table(headers, rows, whole=("sync", "state"), left_out_first=(
        "seconds", "not found", "failed", "acked", "sent", "parked", "rejected", "+added ~changed -removed"))


# The length `shown_key` gives a key it shortened (`kkk… (1,000,012 characters)`).
_KEY_LENGTH = re.compile(r"… \(\d[\d,]* characters\)$")


def key_cell(key: str | None, limit: int) -> str:
    """A matching key for a table cell (see `cell`): a key shortened with its length keeps that length."""
    if key is None:
        return "(no key)"
    mark = _KEY_LENGTH.search(key) if len(key) > limit else None
    if mark is None:
        return cell(str(key), limit)
    start = cell(key[:mark.start()], max(8, limit - len(mark.group()) + 1))  # ends with its own "…"
    return start.removesuffix("…") + mark.group()


def print_limited(count: int, word: str, more: bool) -> None:
    """Under a list `--limit` cut (`more`: the command read one row past it), say so and how to see more."""
    if more:
        out().print(f"shown: the newest {plural(count, word)} (--limit N shows more)", markup=False, highlight=False)


# Piped or redirected (files, grep, awk), a table's texts are printed whole up to this many characters
# (keys are kept up to 1,040, a destination's reason up to 500): cut to a terminal's widths, a key
# of 61 characters was not found by grep, and a reason lost its end, often the part that says why.
PIPED_CELL_CHARS = 4_000


def cell_chars(on_a_terminal: int) -> int:
    """How many characters of a table's text to show: `on_a_terminal` there, else PIPED_CELL_CHARS."""
    return on_a_terminal if out().is_terminal else PIPED_CELL_CHARS


def print_rejections(rows: list[dict], more: bool = False) -> None:
    if not rows:
        out().print("no rejected rows")
        return
    headers = ["rejected at (UTC)", "run", "key", "field", "status", "reason"]
    key_chars, field_chars, reason_chars = cell_chars(60), cell_chars(60), cell_chars(120)
    cells = [[(r["rejected_at"] or "")[:19].replace("T", " "), r["run_id"], key_cell(r["key"], key_chars),
              cell(r["field"] or "", field_chars), r["status"], cell(r["reason"] or "", reason_chars)] for r in rows]
    print_table(headers, cells, whole=("run", "status"), left_out_first=("rejected at (UTC)", "field"))
    print_limited(len(rows), "row", more)


def print_runs(runs: list[dict], more: bool = False) -> None:
    """`dinsync runs NAME`: one line per run, newest first."""
    if not runs:
        out().print("no runs yet")
        return
    headers = ["run", "started (UTC)", "status", "segment", "added", "changed", "removed", "sent", "acked",
               "rejected", "not found", "failed", "seconds", "error / warnings"]
    rows = []
    note_chars = cell_chars(100)
    for r in runs:
        started = (r["started_at"] or "")[:19].replace("T", " ")
        note_text = run_why(r)
        rows.append([r["run_id"] or "", started, r["status"], *(f"{r[c]:,}" for c in (
            "segment_rows", "added", "changed", "removed", "sent", "acknowledged", "rejected", "not_found", "failed")),
            seconds_cell(r), cell(note_text, note_chars)])
    print_table(headers, rows, whole=("run", "status"), left_out_first=(
        "seconds", "segment", "not found", "failed", "acked", "removed", "changed", "added", "rejected", "sent"))
    print_limited(len(runs), "run", more)


def print_check(models) -> None:
    """`dinsync check`: one line per model, one per key, then the messages (ModelCheck objects)."""
    colours = {"ok": "green", "warning": "yellow", "blocked": "red"}
    if not models:
        out().print("no model to check")
        return
    for m in models:
        dbt = f" (dbt: {', '.join(m.dbt_models)})" if m.dbt_models else ""
        out().print(f"[bold]{escape(m.model)}[/]{escape(dbt)}: [{colours[m.status]}]{m.status}[/], {m.rows:,} rows; "
                    f"syncs: {escape(', '.join(m.syncs))}", highlight=False)
        for k in m.keys:
            role = "primary key" if k.primary_key else ""
            if k.syncs:
                role = (role + ", " if role else "") + "matched by " + ", ".join(k.syncs)
            limit = f" (limit {k.limit_pct:g}%)" if k.limit_pct is not None else ""
            out().print(f"  {escape(k.column)} {escape('(' + role + ')')}: {k.null_keys:,} NULL, {plural(k.duplicate_keys, 'duplicated key')} on "
                        f"{k.duplicate_rows:,} rows = {k.duplicate_pct:.1f}%{limit} "
                        f"[{colours[k.status]}]{k.status}[/]", highlight=False, markup=True)
            for sample in k.sample:
                out().print(f"    {sample['key']!r}: {sample['rows']} rows", markup=False, highlight=False)
        for message, status in zip(m.messages, m.message_statuses):
            out().print(f"  [{colours[status]}]{status}:[/] " + escape(message), highlight=False)
