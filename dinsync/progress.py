"""Progress of a run on the terminal, driven by the engine's progress events.

Events (engine -> callback(event, data)): `plan` {sync}, `send` {total}, `sent` {rows},
`checkpoint` {acknowledged}, `finish` {}, `note` {message}. They may come from worker threads.

- On a terminal: a rich progress bar (transient), notes printed above it.
- Elsewhere (CI logs, pipes): one line per phase: planning, sending N rows, checkpoint counts
  at most every `interval` seconds, sent/committing; notes as they come.
- JSON output: notes only (on stderr; stdout holds the JSON document).
"""
from __future__ import annotations

import contextlib
import math
import os
import threading
import time
from typing import Any, Callable, Iterator

from .terminal import visible

Callback = Callable[[str, dict[str, Any]], None]
LINE_INTERVAL_ENV = "DINSYNC_PROGRESS_SECONDS"
DEFAULT_LINE_INTERVAL = 5.0


def line_interval() -> float:
    """Seconds between progress lines: DINSYNC_PROGRESS_SECONDS (a number >= 0), else 5. Anything
    else is a configuration error, as for the engine's DINSYNC_* knobs (engine/options.py)."""
    value = os.environ.get(LINE_INTERVAL_ENV)
    if not value:
        return DEFAULT_LINE_INTERVAL
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not (math.isfinite(seconds) and seconds >= 0):
        from .errors import env_setting_error

        raise env_setting_error(LINE_INTERVAL_ENV, "a number of seconds (0 or more)", value, DEFAULT_LINE_INTERVAL)
    return seconds


class LineProgress:
    """One plain line per phase (for logs): `<sync>: <what> [elapsed]`."""

    def __init__(self, sync: str, write: Callable[[str], None], *, notes_only: bool = False,
                 interval: float | None = None, clock: Callable[[], float] = time.monotonic):
        self.sync = sync
        self.write = write
        self.notes_only = notes_only
        self.interval = line_interval() if interval is None else interval
        self.clock = clock
        self.started = clock()
        self.total = 0
        self.sent = 0
        self.acknowledged = 0
        self._last_line = float("-inf")
        self._lock = threading.Lock()

    def _line(self, text: str) -> None:
        self.write(f"{self.sync}: {text} [{self.clock() - self.started:.1f}s]")

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        with self._lock:
            if event == "note":
                self.write(f"{self.sync}: note: {data.get('message', '')}")
                return
            if event == "sent":
                self.sent += int(data.get("rows") or 0)
                return
            if event == "checkpoint":
                self.acknowledged += int(data.get("acknowledged") or 0)
            if self.notes_only:
                return
            if event == "plan":
                self._line("planning")
            elif event == "send":
                self.total = int(data.get("total") or 0)
                self._line(f"sending {self.total:,} rows")
            elif event == "checkpoint":
                now = self.clock()
                if now - self._last_line >= self.interval:
                    self._last_line = now
                    self._line(f"sent {self.sent:,}/{self.total:,} rows, {self.acknowledged:,} acknowledged")
            elif event == "finish":
                self._line(f"sent {self.sent:,}/{self.total:,} rows, committing")


@contextlib.contextmanager
def bar_progress(sync: str, console: Any) -> Iterator[Callback]:
    """A transient rich progress bar on `console` (a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn(f"[bold]{sync}[/]"), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=console, transient=True) as bar:
        task = bar.add_task("planning", total=None)

        def on_event(event: str, data: dict[str, Any]) -> None:
            if event == "note":
                bar.console.print(visible(f"{sync}: note: {data.get('message', '')}"), markup=False, highlight=False)
            elif event == "send":
                bar.update(task, description="sending", total=data["total"], completed=0)
            elif event == "sent":
                bar.advance(task, data["rows"])
            elif event == "finish":
                bar.update(task, description="committing")

        yield on_event
