"""What the commands share: the app, its options and state, the error handler, the project and the syncs chosen."""
from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from .. import __version__, terminal
from ..destinations import describe_error
from ..errors import ConfigError, ConfigIssue, DinsyncError, ExitCode, is_panic, resource_hint
from ..terminal import emit, err, note, print_traceback


app = typer.Typer(add_completion=False, no_args_is_help=True, help="Warehouse-native reverse ETL.",
                  epilog="Exit codes: 0 ok, 1 a run failed, 2 usage error, 3 configuration error, 4 warnings, "
                         "5 another run holds the lock, 6 paused by hand (several syncs: the worst, "
                         "3 > 1 > 6 > 5 > 4 > 0); stopped by SIGTERM or Ctrl-C: 143 or 130, the run "
                         "recorded cancelled.",
                  pretty_exceptions_enable=False)
DEBUG_ENV = "DINSYNC_DEBUG"


class State:
    project_dir: Path = Path(".")
    project_dir_given: bool = False  # `dinsync -p DIR COMMAND`: init, demo and sandbox refuse it
    json: bool = False
    quiet_progress: bool = False  # `serve`: runs report notes only (the service logs one line per run)


state = State()


def debug() -> bool:
    return bool(os.environ.get(DEBUG_ENV))


def fail(exc: DinsyncError) -> None:
    if state.json:
        payload: dict[str, Any] = {"error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}
        if isinstance(exc, ConfigError):
            payload["issues"] = [i.as_dict() for i in exc.issues]
            payload["error"] = f"{len(exc.issues)} configuration error(s)"
        emit(payload)
    else:
        if isinstance(exc, ConfigError):
            err().print(f"[bold red]{len(exc.issues)} configuration error(s)[/]")
            for issue in exc.issues:
                err().print("  " + terminal.visible(issue.format()), markup=False, highlight=False)
        else:
            err().print("[bold red]error:[/] " + terminal.escape(exc.message), highlight=False)
            if exc.hint:
                err().print("[dim]hint: " + terminal.escape(exc.hint) + "[/]", highlight=False)
    raise typer.Exit(exc.exit_code)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    try:
        yield
    except (typer.Exit, KeyboardInterrupt):
        raise
    except DinsyncError as exc:
        if debug() and exc.__cause__ is not None:
            print_traceback(exc)
        fail(exc)
    except BaseException as exc:  # a bug or an environment problem: one clean line, traceback on demand
        if not (isinstance(exc, Exception) or is_panic(exc)):
            raise
        if debug():
            print_traceback(exc)
        fail(DinsyncError(f"unexpected error: {describe_error(exc)}",
                          resource_hint(exc) or (None if debug() else f"set {DEBUG_ENV}=1 for a traceback")))


# --- options shared by the commands ------------------------------------------------------------

def _version(value: bool) -> None:
    if value:  # (eager: runs before --json is read, so the command line says whether it was given)
        if _json_requested(sys.argv[1:]):
            emit({"version": __version__})
        else:
            typer.echo(f"dinsync {__version__}")
        raise typer.Exit()


# `serve --recheck-minutes`: at most 3650 days, as a schedule's interval (`inf` or 1e10 passed the
# option's check and the service failed at its first step: OverflowError, date value out of range)
MAX_RECHECK_MINUTES = 3650 * 24 * 60


def folder(text: str) -> Path:
    """A folder argument (`-p`, `init DIR`, `demo --path`): "" (`"$DIR"` with DIR unset) is a usage
    error, not the current folder, which Path("") would be (`init "" --force` overwrote the files
    there, `demo --path "" --force` deleted its warehouse.duckdb); `.` names the current folder."""
    if text == "":
        raise typer.BadParameter("is empty: name a folder (`.` for the current one)")
    return Path(text)


ProjectDirOpt = typer.Option(None, "--project-dir", "-p", parser=folder, metavar="DIR",
                             help="Folder holding dinsync.yml (default: here).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output on stdout.")
NamesArg = typer.Argument(None, metavar="SYNC", show_default=False,
                          help="Sync names or globs (shorthand for --select).")
OneSyncArg = typer.Argument(None, metavar="SYNC", show_default=False,
                            help="The sync (may be left out in a project of one sync).")
SelectOpt = typer.Option(None, "--select", "-s", metavar="S", help="Sync names or globs (repeat or comma-separate).")
ExcludeOpt = typer.Option(None, "--exclude", "-x", metavar="S", help="Leave out these sync names or globs.")


@app.callback()
def _main(
    project_dir: Optional[Path] = ProjectDirOpt,
    json_output: bool = JsonOpt,
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version."),
) -> None:
    state.project_dir = project_dir or Path(".")
    state.project_dir_given = project_dir is not None
    state.json = json_output
    state.quiet_progress = False
    terminal.reset()


def use_options(project_dir: Optional[Path], json_output: bool) -> None:
    """Global options given after the subcommand (`dinsync sync --json -p DIR`) win."""
    if project_dir is not None:
        state.project_dir = project_dir
    if json_output:
        state.json = True


class ProjectOptionRefused(DinsyncError):
    """A project option given to a command that takes none (`dinsync -p DIR init x`): a usage error."""

    exit_code = ExitCode.USAGE


def refuse_project_options(command: str, instead: str, *, json_too: bool = False) -> None:
    """`init`, `demo` (and `sandbox`, which also writes no JSON) take no project folder: given before
    the subcommand (`dinsync -p DIR init x`), the option was silently ignored (init wrote ./x),
    where after it (`dinsync init x -p DIR`) it is a usage error. Both are now (exit 2)."""
    given = (["--project-dir"] if state.project_dir_given else []) + (["--json"] if json_too and state.json else [])
    if given:
        with handled():
            raise ProjectOptionRefused(f"`dinsync {command}` takes no {' or '.join(given)}", instead)


# --- the project -------------------------------------------------------------------------------

@contextlib.contextmanager
def in_project() -> Iterator[Path]:
    """Run with the project folder as working directory (model SQL may read relative files)."""
    root = state.project_dir.resolve()
    if not (root / "dinsync.yml").is_file():
        from ..operations import no_project_hint

        hint = no_project_hint(root, "run `dinsync init` or pass --project-dir", "--project-dir")
        fail(ConfigError([ConfigIssue(f"no dinsync.yml in {root}", hint=hint)]))
    from ..operations import working_dir

    with working_dir(root):
        yield root


# load() and connect_existing() live in dinsync.operations (shared with the Python API)
from ..operations import MAX_COUNT, connect_existing, load  # noqa: E402,F401 (MAX_COUNT: the options' bound)


def choose(project, names, select, exclude, *, include_disabled: bool = False) -> list[str]:
    """The syncs a command acts on (rules in `dinsync.selection`); prints its notes."""
    from ..operations import select as select_syncs

    chosen = select_syncs(project, names, select, exclude, include_disabled=include_disabled)
    for text in chosen.notes:
        note(text)
    return chosen.names


def load_chosen(names, select, exclude, check_models: bool = True, connect: bool = True):
    """(project, warehouse, the syncs a command runs): the project validated, model columns checked
    for the chosen syncs' models only (a model only other syncs use, e.g. one not built yet, does
    not stop these); a selection naming nothing is reported also when the project fails to load."""
    chosen: list[str] = []

    def pick(project) -> list[str]:
        chosen[:] = choose(project, names, select, exclude)
        return chosen

    project, wh = load(check_models=check_models, syncs=pick, connect=connect)
    return project, wh, chosen


def make_operator(project, wh, stop=None):
    """The project's operating state (see `dinsync.operations.make_operator`), notes on stderr."""
    from ..operations import make_operator as make

    return make(project, wh, log=note, stop=stop)


def _json_requested(args: list[str]) -> bool:
    """`--json` among the command line's options (not after `--`, where it would be an argument)."""
    return "--json" in (args[:args.index("--")] if "--" in args else args)
