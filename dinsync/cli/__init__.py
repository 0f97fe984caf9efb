"""The `dinsync` command: thin typer commands, one error handler, rich output or --json.

Exit codes: 0 ok · 1 a run failed · 2 usage error · 3 configuration error · 4 a run finished
with warnings (when the sync's `fail_on_warning` is true) · 5 another run holds the lock ·
6 the sync was paused by hand. When several syncs run, the worst outcome wins:
3 > 1 > 6 > 5 > 4 > 0 (see `dinsync.report`).

Every text written to stdout or stderr goes through `dinsync.redaction` (the consoles write to
redacting streams; tracebacks are formatted, redacted, then printed). Heavy libraries (polars,
aiohttp, sqlglot, the warehouse drivers) are imported only by the commands that need them.
"""
from __future__ import annotations

import sys

import typer

from .. import terminal
from ..errors import ExitCode, is_panic, resource_hint
from ..process import exit_now, use_one_blas_thread, use_one_polars_arena, use_system_arrow_pool
from ..terminal import RedactingStream, emit, print_traceback
from . import project_commands, serve_commands, state_commands, sync_commands  # noqa: F401 (they add the commands)
from .shared import DEBUG_ENV, _json_requested, app, debug
from .shared import connect_existing, load_chosen  # noqa: F401 (dinsync.cli's names before its split)
from .sync_commands import run_sync  # noqa: F401 (as above)

# the commands in the order `dinsync --help` lists them (typer lists them as they were added)
COMMANDS = ("validate", "plan", "sync", "status", "serve", "pause", "resume", "runs", "rejections", "check",
            "init", "sandbox", "demo")
app.registered_commands.sort(key=lambda command: COMMANDS.index(command.callback.__name__))


def main() -> None:
    """The `dinsync` console script (and `python -m dinsync.cli`): run the command, then exit
    without tearing the interpreter down (see `exit_now`)."""
    use_system_arrow_pool()
    use_one_polars_arena()
    use_one_blas_thread()
    terminal.redact_library_output()
    terminal.replace_unwritable_characters()
    try:
        _run_app()
    except SystemExit as done:
        exit_now(done.code)
    exit_now(0)


def _paragraphs(doc: str) -> str:
    """A docstring as paragraphs without line breaks: Typer keeps them, and the terminal wraps the
    lines again at its own width (ragged help)."""
    import inspect

    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(doc).split("\n\n"))


for _command in app.registered_commands:
    if _command.callback.__doc__:
        _command.callback.__doc__ = _paragraphs(_command.callback.__doc__)


def _flags_show_no_value(callback) -> None:
    """A flag's help shows no value: typer 0.29 shows each option's Python type, and a flag read
    `--offline <bool>`, `--json <bool>`, as if it took one (`--offline true` selects a sync named
    `true`). The options that take one name it as the README does (`--limit N`, `-p DIR`)."""
    import inspect

    for parameter in inspect.signature(callback).parameters.values():
        info = parameter.default
        if isinstance(info, typer.models.OptionInfo) and isinstance(info.default, bool) and info.metavar is None:
            info.metavar = ""


for _callback in [c.callback for c in app.registered_commands] + [app.registered_callback.callback]:
    _flags_show_no_value(_callback)


def _run_app_for_json() -> None:
    """`--json` promises a JSON document on stdout, also for a usage error (an unknown option, a
    value out of range, a missing argument), which typer prints as boxed text on stderr, leaving
    stdout empty: such errors are caught and emitted as `{"error", "hint", "exit_code"}`."""
    try:
        from typer import TyperException as UsageProblem  # click's exceptions, as typer vendors them
    except ImportError:  # an older typer, on click itself
        from click import ClickException as UsageProblem

    try:
        code = app(standalone_mode=False)
    except typer.Abort:  # as typer says it in its standalone mode
        RedactingStream(sys.stderr).write("Aborted!\n")
        sys.exit(1)
    except UsageProblem as exc:
        command = exc.ctx.command_path if getattr(exc, "ctx", None) is not None else "dinsync"
        top = getattr(exc, "ctx", None) is None or exc.ctx.parent is None
        listed = "commands and options" if top else "options"  # (the top level's help lists the commands)
        emit({"error": exc.format_message(), "hint": f"`{command} --help` lists the {listed}",
              "exit_code": exc.exit_code})
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def _run_app() -> None:
    try:
        if _json_requested(sys.argv[1:]):
            _run_app_for_json()
        else:
            app()
    except KeyboardInterrupt:
        RedactingStream(sys.stderr).write("interrupted\n")
        sys.exit(130)
    except SystemExit as done:  # typer turns a Ctrl-C outside a run's graceful stop into exit 130, without a word
        if done.code == 130 and isinstance(getattr(done.__context__, "__cause__", None), KeyboardInterrupt):
            RedactingStream(sys.stderr).write("interrupted\n")
        raise
    except BaseException as exc:  # escaped every handler (a bug): never an unredacted traceback
        if not (isinstance(exc, Exception) or is_panic(exc)):
            raise
        if debug():
            print_traceback(exc)
        else:
            RedactingStream(sys.stderr).write(f"error: unexpected {type(exc).__name__}: {exc}\n"
                                            f"hint: {resource_hint(exc) or f'set {DEBUG_ENV}=1 for a traceback'}\n")
        sys.exit(ExitCode.RUN_FAILED)
