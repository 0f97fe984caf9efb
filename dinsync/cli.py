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

import contextlib
import os
import sys
from pathlib import Path
from typing import Any, Iterator, Optional

import typer

from . import __version__, redaction, terminal
from .errors import ConfigError, ConfigIssue, DinsyncError, ExitCode, LockBusyError, is_panic, resource_hint
from .process import exit_now, use_one_blas_thread, use_one_polars_arena, use_system_arrow_pool
from .terminal import (RedactingStream, emit, err, note, out, print_plan, print_rejections, print_run,
                       print_runs, print_syncs, print_traceback)

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
        fail(DinsyncError(f"unexpected error: {type(exc).__name__}: {exc}",
                          resource_hint(exc) or (None if debug() else f"set {DEBUG_ENV}=1 for a traceback")))


# --- options shared by the commands ------------------------------------------------------------

def _version(value: bool) -> None:
    if value:  # (eager: runs before --json is read, so the command line says whether it was given)
        if _json_requested(sys.argv[1:]):
            emit({"version": __version__})
        else:
            typer.echo(f"dinsync {__version__}")
        raise typer.Exit()


# sample counts become a LIMIT in the warehouse's SQL: a count none of them can take is a usage error
MAX_SAMPLES = 1_000_000_000
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


ProjectDirOpt = typer.Option(None, "--project-dir", "-p", parser=folder,
                             help="Folder holding dinsync.yml (default: here).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output on stdout.")
NamesArg = typer.Argument(None, metavar="SYNC", show_default=False,
                          help="Sync names or globs (shorthand for --select).")
OneSyncArg = typer.Argument(None, metavar="SYNC", show_default=False,
                            help="The sync (may be left out in a project of one sync).")
SelectOpt = typer.Option(None, "--select", "-s", help="Sync names or globs (repeat or comma-separate).")
ExcludeOpt = typer.Option(None, "--exclude", "-x", help="Leave out these sync names or globs.")


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
        from .operations import no_project_hint

        hint = no_project_hint(root, "run `dinsync init` or pass --project-dir", "--project-dir")
        fail(ConfigError([ConfigIssue(f"no dinsync.yml in {root}", hint=hint)]))
    from .operations import working_dir

    with working_dir(root):
        yield root


# load() and connect_existing() live in dinsync.operations (shared with the Python API)
from .operations import connect_existing, load  # noqa: E402


def choose(project, names, select, exclude, *, include_disabled: bool = False) -> list[str]:
    """The syncs a command acts on (rules in `dinsync.selection`); prints its notes."""
    from .operations import select as select_syncs

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


# --- commands ----------------------------------------------------------------------------------

@app.command()
def validate(offline: bool = typer.Option(False, "--offline", help="Do not ask the platforms to check mappings."),
             project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Check every project file, model columns in the warehouse, and each mapping against its
    platform's schema (destinations with a pre-flight check, e.g. Attio attributes, Splio fields);
    report all errors at once."""
    use_options(project_dir, json_output)
    with handled(), in_project():
        project, wh = load()
        try:
            paused = recheck_paused(project, wh, recheck=not offline)
        finally:
            wh.close()
        if not offline:
            issues = preflight_issues(project)
            unchecked = [i for i in issues if isinstance(i, UncheckedSync)]
            if len(unchecked) < len(issues):  # a file to fix (with the syncs not checked, if any)
                raise ConfigError(issues)
            if unchecked:  # only platforms that could not answer: nothing is known wrong, try again
                raise DinsyncError("; ".join(i.message for i in unchecked),
                                   hint=unchecked[0].hint or "run `dinsync validate` again later, or pass --offline")
        result = {"ok": True, "syncs": sorted(project.syncs), "models": sorted(project.models),
                  "destinations": sorted(project.destinations), "paused": paused}
        if state.json:
            emit(result)
        else:
            out().print(f"[green]OK[/]: {len(project.syncs)} sync(s), {len(project.models)} model(s), "
                        f"{len(project.destinations)} destination(s)")
            print_paused_checks(paused)


class UncheckedSync(ConfigIssue):
    """A sync whose pre-flight check could not reach its platform (an outage): not known wrong."""


def preflight_issues(project) -> list[ConfigIssue]:
    """Pre-flight checks of the enabled syncs whose destination has one (nothing is sent); those
    whose platform could not be reached are `UncheckedSync`s."""
    from .destinations.base import Destination
    from .errors import DestinationUnreachableError

    issues: list[ConfigIssue] = []
    for name, cfg in sorted(project.syncs.items()):
        dest_cfg = project.destinations[cfg.destination]
        if not cfg.enabled or dest_cfg.destination_class.preflight is Destination.preflight:
            continue
        from .engine import preflight_sync  # only when a platform has something to check

        try:
            issues += preflight_sync(project, name)
        except DinsyncError as exc:  # unreachable platform, refused credentials: say which sync
            kind = UncheckedSync if isinstance(exc, DestinationUnreachableError) else ConfigIssue
            issues.append(kind(f"pre-flight check of sync {name} failed: {redaction.redact(exc.message)}",
                                      project.relative(cfg.path), None,
                                      exc.hint or "check the destination's base_url and credentials, or pass --offline"))
        except Exception as exc:  # a bug of the destination's hook (a plugin's): the other syncs are still checked
            issues.append(ConfigIssue(
                redaction.redact(f"pre-flight check of sync {name} failed: {dest_cfg.type}'s preflight raised "
                                 f"{type(exc).__name__}: {exc}"),
                project.relative(cfg.path), None, "a bug of that destination's code; --offline skips the check"))
    return issues


@app.command()
def plan(names: Optional[list[str]] = NamesArg,
         select: Optional[list[str]] = SelectOpt,
         exclude: Optional[list[str]] = ExcludeOpt,
         full_refresh: bool = typer.Option(False, "--full-refresh", help="Plan as if nothing had been sent."),
         samples: int = typer.Option(3, min=0, max=MAX_SAMPLES, help="Sample rows per kind of change."),
         project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Dry run: what each sync would send, per field. Nothing is sent, nothing is committed."""
    use_options(project_dir, json_output)
    with handled(), in_project():
        from .operations import plan_sync
        from .report import worst_exit_code

        project, wh, chosen = load_chosen(names, select, exclude)
        report, errors = [], []
        try:
            for name in chosen:  # each sync is planned whatever the others did, as `sync` runs them
                try:
                    report.append(plan_sync(project, wh, name, full_refresh=full_refresh, samples=samples))
                except DinsyncError as exc:
                    if len(chosen) == 1:
                        raise
                    debug_traceback(exc)
                    errors.append((name, exc))
        finally:
            wh.close()
        exit_code = worst_exit_code(exc.exit_code for _, exc in errors)
        if state.json:
            emit({"plans": report} if not errors else {
                "plans": report, "exit_code": exit_code,
                "errors": [{"sync": name, "error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code,
                            **({"issues": [i.as_dict() for i in exc.issues]} if isinstance(exc, ConfigError) else {})}
                           for name, exc in errors]})
        else:
            for entry in report:
                print_plan(entry)
            for name, exc in errors:
                err().print(f"[bold red]error:[/] {terminal.escape(name)}: " + terminal.escape(exc.message),
                            highlight=False)
                if exc.hint:
                    err().print("[dim]hint: " + terminal.escape(exc.hint) + "[/]", highlight=False)
    raise typer.Exit(exit_code)


@app.command()
def sync(names: Optional[list[str]] = NamesArg,
         select: Optional[list[str]] = SelectOpt,
         exclude: Optional[list[str]] = ExcludeOpt,
         full_refresh: bool = typer.Option(False, "--full-refresh", help="Send every row again."),
         retry_rejected: bool = typer.Option(False, "--retry-rejected",
                                             help="Send rows parked as rejected again, even if unchanged."),
         force: bool = typer.Option(False, "--force", help="Run paused syncs too (their pause stays)."),
         project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Bring each selected destination up to date with its model.

    A paused sync is refused (exit 6) unless --force; an automatically paused one is checked
    first and runs when its checks pass again (see `dinsync pause`).

    SIGTERM / SIGINT stop gracefully: no new batch is read, requests in flight finish (at most
    DINSYNC_GRACE_SECONDS), acknowledged rows are committed, the run is recorded as `cancelled`
    and the command exits 128 + the signal number. A second signal exits at once (still safe)."""
    use_options(project_dir, json_output)
    from .engine import StopToken, stop_on_signals

    stop = StopToken()

    def on_signal(name: str) -> None:
        err().print(f"{name}: stopping after the requests in flight (send it again to exit at once)",
                    markup=False, highlight=False)

    with handled(), in_project(), stop_on_signals(stop, on_signal):
        from .operations import run_syncs, sync_exit_code
        from .progress import line_interval

        line_interval()  # an unusable DINSYNC_PROGRESS_SECONDS stops here, before any run
        project, wh, chosen = load_chosen(names, select, exclude)
        try:
            results = run_syncs(project, wh, chosen, full_refresh=full_refresh,
                                retry_rejected=retry_rejected, stop=stop, progress_for=progress_for,
                                on_exception=debug_traceback, on_run=print_run_and_issues,
                                operator=make_operator(project, wh), force=force, log=note)
        finally:
            wh.close()
        runs = [run for run, _ in results]
        exit_code = sync_exit_code(results, stop)
        if state.json:
            emit({"runs": runs, "exit_code": exit_code})
    raise typer.Exit(exit_code)


def run_sync(project, wh, name: str, full_refresh: bool, *, retry_rejected: bool = False,
             stop=None, errors: list | None = None, refresh_dbt: bool = False) -> tuple[dict, int]:
    """Run one sync; its run object and exit code (see `dinsync.operations.run_sync`)."""
    from .operations import run_sync as run_one

    run, code, _ = run_one(project, wh, name, full_refresh, retry_rejected=retry_rejected, stop=stop,
                           progress_for=progress_for, on_exception=debug_traceback, errors=errors,
                           refresh_dbt=refresh_dbt)
    return run, code


def debug_traceback(exc: BaseException) -> None:
    """With DINSYNC_DEBUG=1, the (redacted) traceback behind a failed run."""
    if debug():
        print_traceback(exc)


def print_run_and_issues(run: dict) -> None:
    """A finished run on the terminal (nothing with --json: the document holds it)."""
    if state.json:
        return
    for issue in run.get("issues") or ():
        err().print("  " + terminal.visible(ConfigIssue(**issue).format()), markup=False, highlight=False)
    print_run(run)


@contextlib.contextmanager
def progress_for(name: str):
    """Progress of one run: a bar on a terminal, a line per phase in logs, notes only with --json."""
    from .progress import LineProgress, bar_progress

    def write(text: str) -> None:
        err().print(terminal.visible(text), markup=False, highlight=False)

    if state.json or state.quiet_progress:
        yield LineProgress(name, write, notes_only=True)
    elif err().file.isatty():  # a real terminal (rich's is_terminal also says yes to FORCE_COLOR in CI)
        with bar_progress(name, err()) as on_event:
            yield on_event
    else:
        yield LineProgress(name, write)


@app.command()
def status(names: Optional[list[str]] = NamesArg,
           select: Optional[list[str]] = SelectOpt,
           exclude: Optional[list[str]] = ExcludeOpt,
           limit: int = typer.Option(5, min=1, help="Runs per sync in --json's `runs`."),
           project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """One line per sync (disabled ones included): its state, last run, counts, parked rows, and
    why it is paused or warned, from the state tables in the warehouse."""
    use_options(project_dir, json_output)
    with handled(), in_project():
        from .operations import status_data

        project, wh = load(check_models=False, destination_secrets=False, notification_secrets=False)
        try:
            data = status_data(project, wh, choose(project, names, select, exclude, include_disabled=True), limit)
        finally:
            wh.close()
        if state.json:
            emit(data)
            return
        print_syncs(data["syncs"])


# --- operating syncs: pause guard, serve, pause / resume, runs, rejections -------------------------

def make_notifier(project):
    from .ops.notify import Notifier

    return Notifier(project.notifications, project=project.root.name, log=note)


def make_operator(project, wh):
    """The project's operating state (see `dinsync.operations.make_operator`), notes on stderr."""
    from .operations import make_operator as make

    return make(project, wh, log=note)


def recheck_paused(project, wh, recheck: bool = True) -> list[dict]:
    """`validate`: check the automatically paused syncs again (resuming those that pass) and list
    every paused one. Reads nothing when the state tables predate pauses. `recheck=False`
    (`--offline`): listed only; a check asks the platform with the credentials, and a resume
    writes an event and notifies."""
    from .state import StateStore

    store = StateStore(wh, project.state_schema)
    if store.check_tables() < 4:  # tables of the state layout's names that are not dinsync's: exit 3
        return []
    from .state.syncstate import SyncStates

    paused = [s for s in SyncStates(store).all().values() if s.paused and s.sync in project.syncs]
    if not paused:
        return []
    operator = make_operator(project, wh) if recheck else None
    report = []
    for st in paused:
        entry = {"sync": st.sync, "paused_by": st.paused_by, "culprit": st.culprit, "reason": st.reason,
                 "resumed": False}
        if st.auto_paused and operator is not None:  # (None with recheck=False)
            result = operator.recheck(st.sync, st)
            entry["resumed"] = result.ok
            if not result.ok:
                entry["reason"] = result.describe()
        report.append(entry)
    return report


def print_paused_checks(paused: list[dict]) -> None:
    for p in paused:
        if p["resumed"]:
            out().print(f"resumed {p['sync']}: its checks pass again", markup=False, highlight=False)
        else:
            who = "by hand" if p["paused_by"] == "hand" else p["culprit"]
            out().print(f"[yellow]still paused[/] {terminal.escape(p['sync'])} ({who}): "
                        f"{terminal.escape(p['reason'] or '')}", highlight=False)


@app.command()
def serve(names: Optional[list[str]] = NamesArg,
          select: Optional[list[str]] = SelectOpt,
          exclude: Optional[list[str]] = ExcludeOpt,
          parallel: int = typer.Option(1, min=1, max=64, help="Syncs running at once."),
          recheck_minutes: float = typer.Option(5.0, min=0.01, max=MAX_RECHECK_MINUTES,
                                                help="How often paused syncs are checked again."),
          project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Run the selected syncs on their schedules until SIGTERM / SIGINT / SIGHUP (one log line per run).

    A signal stops gracefully: no new run starts, runs in flight stop as `dinsync sync` does
    (committed, recorded `cancelled`), then the service exits 0. A second signal exits at once."""
    use_options(project_dir, json_output)
    from .engine import StopToken, stop_on_signals

    stop = StopToken()
    service = None

    def on_signal(name: str) -> None:
        err().print(f"{name}: stopping (no new run starts; runs in flight stop gracefully)",
                    markup=False, highlight=False)
        if service is not None:
            service.wake()

    with handled(), in_project(), stop_on_signals(stop, on_signal, hangup=True):
        from .ops.serve import Service, format_line
        from .progress import line_interval

        line_interval()  # an unusable DINSYNC_PROGRESS_SECONDS stops here, not in each run
        # models are checked per run: one broken model pauses its syncs only
        project, _, chosen = load_chosen(names, select, exclude, check_models=False, connect=False)
        try:  # a warehouse that cannot be opened at all stops the service here
            connect_existing(project.warehouse, project.root).close()
        except LockBusyError as exc:
            # a DuckDB file held just now (a dbt build, a `dinsync status`): the service starts, reads
            # the run log once the file is free and its runs wait for it, where it exited 5
            note(f"{exc.message}: serve starts and reads the run log once it is free")
        scheduled = [n for n in chosen if project.syncs[n].schedule is not None]
        for name in chosen:
            if name not in scheduled:
                note(f"sync {name} has no schedule; serve leaves it out")
        if not scheduled:
            raise ConfigError([ConfigIssue("no selected sync has a schedule", hint='add `schedule: "0 6 * * *"` '
                                           "or `schedule: {every: 15m}` to a sync file")])
        state.quiet_progress = True
        terminal.KEEP_GOING_ON_BROKEN_PIPE = True  # a note to a closed stderr must not end a run

        def emit_event(event: dict) -> None:
            if state.json:
                terminal.write_json(terminal.json_line(event) + "\n")
            else:
                terminal.write_line(format_line(event))  # (not rich: see write_line)

        service = Service(project, scheduled, connect=lambda: connect_existing(project.warehouse, project.root),
                          run_one=lambda wh, name, errors: run_sync(project, wh, name, False, stop=stop, errors=errors,
                                                                    refresh_dbt=True),
                          notifier=make_notifier(project), emit=emit_event, stop=stop, parallel=parallel,
                          recheck_seconds=recheck_minutes * 60.0)
        service.serve()
    raise typer.Exit(ExitCode.OK)


def _pause_or_resume(names: list[str], reason: Optional[str], pausing: bool) -> None:
    with handled(), in_project():
        from .ops.status import sync_statuses

        project, wh = load(check_models=False, destination_secrets=False)
        try:
            chosen = choose(project, names, None, None, include_disabled=True)
            operator = make_operator(project, wh)
            if operator is None:
                raise DinsyncError("the state tables cannot be read", "check the warehouse and the state schema")
            for name in chosen:
                current = operator.states.get(name)
                if pausing and reason is None and current.hand_paused:
                    note(f"sync {name} is already paused by hand: {current.reason}")  # keep its reason
                elif pausing:
                    operator.pause(name, by="hand", culprit="hand", reason=reason or "no reason given")
                elif current.paused:
                    operator.resume(name, detail="resumed by hand")
                else:
                    note(f"sync {name} is not paused")
            syncs = sync_statuses(project, operator.states.store, chosen)
        finally:
            wh.close()
        if state.json:
            emit({"syncs": syncs})
        else:
            print_syncs(syncs)


@app.command()
def pause(names: list[str] = typer.Argument(..., metavar="SYNC", help="Sync names or globs."),
          reason: Optional[str] = typer.Option(None, "--reason", help="Shown in status and notifications."),
          project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Pause syncs by hand: scheduled runs skip them, `sync` refuses them, until `dinsync resume`."""
    use_options(project_dir, json_output)
    _pause_or_resume(names, reason, pausing=True)


@app.command()
def resume(names: list[str] = typer.Argument(..., metavar="SYNC", help="Sync names or globs."),
           project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Resume paused syncs (paused by hand or by themselves)."""
    use_options(project_dir, json_output)
    _pause_or_resume(names, None, pausing=False)


class SyncNotNamed(DinsyncError):
    """`runs` / `rejections` without a sync, in a project of several: a usage error."""

    exit_code = ExitCode.USAGE


def _one_sync(project, name: str | None, store=None) -> str:
    """The sync a command names; left out, the project's only sync. With the state `store`, a name
    that is no sync of the project but has runs in the run log (its file was removed or renamed)
    is taken, with a note: its history stays reachable."""
    from .selection import is_glob

    if store is not None and name is not None and not is_glob(name) and name not in project.syncs \
            and store.last_runs(sync=name, limit=1):
        note(f"sync {name} has no file in syncs/ (removed or renamed): its history from the run log")
        return name

    if name is None:
        if len(project.syncs) == 1:
            return next(iter(project.syncs))
        if not project.syncs:  # no name would do: a configuration error, as a name that selects nothing
            raise ConfigError([ConfigIssue("the project has no sync", hint="add one: syncs/<name>.yml (the "
                                           "runs of a sync removed or renamed stay in the state schema's runs table)")])
        raise SyncNotNamed(f"name a sync: the project has {len(project.syncs)}",
                           f"syncs: {', '.join(sorted(project.syncs))}")
    chosen = choose(project, [name], None, None, include_disabled=True)
    if is_glob(name) or len(chosen) != 1:
        raise ConfigError([ConfigIssue(f"name one sync, not {name!r}", hint=f"syncs: {', '.join(sorted(project.syncs))}")])
    return chosen[0]


@app.command()
def runs(name: Optional[str] = OneSyncArg,
         limit: int = typer.Option(20, min=1, help="Newest runs to show."),
         project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """A sync's runs, newest first, from the run log."""
    use_options(project_dir, json_output)
    with handled(), in_project():
        from .ops.status import settle_dead_runs
        from .report import run_from_log
        from .state import StateStore

        project, wh = load(check_models=False, destination_secrets=False, notification_secrets=False)
        try:
            store = StateStore(wh, project.state_schema)
            store.migrate()
            name = _one_sync(project, name, store)
            rows = store.last_runs(sync=name, limit=limit)
            if rows and settle_dead_runs(store, {name: rows[0]}, [name]):  # `abandoned`, as `status` shows it
                rows = store.last_runs(sync=name, limit=limit)
            found = [run_from_log(r) for r in rows]
        finally:
            wh.close()
        if state.json:
            emit({"runs": found})
        else:
            print_runs(found)


@app.command()
def rejections(name: Optional[str] = OneSyncArg,
               run_id: Optional[str] = typer.Option(None, "--run", help="Only this run's rows."),
               limit: int = typer.Option(100, min=1, help="Newest rows to show."),
               project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Rows a sync could not deliver (rejected, not found, failed, duplicate keys withheld, rows
    without a key skipped) with their reasons, newest first."""
    use_options(project_dir, json_output)
    with handled(), in_project():
        from .report import utc_iso
        from .state import StateStore
        from .state.syncstate import SyncStates

        project, wh = load(check_models=False, destination_secrets=False, notification_secrets=False)
        try:
            store = StateStore(wh, project.state_schema)
            store.migrate()
            name = _one_sync(project, name, store)
            rows = SyncStates(store).rejections(name, run_id, limit)
            if run_id and not rows and not store.has_run(name, run_id):
                # like a sync name that selects nothing: a configuration error (exit 3)
                raise ConfigError([ConfigIssue(f"sync {name} has no run {run_id!r}",
                                               hint=f"`dinsync runs {name}` lists its runs and their ids")])
        finally:
            wh.close()
        for row in rows:
            row["rejected_at"] = utc_iso(row["rejected_at"])
        if state.json:
            emit({"rejections": rows})
        else:
            print_rejections(rows)


# --- dinsync check (issue 16: primary keys) -----------------------------------------------------

@app.command()
def check(names: Optional[list[str]] = NamesArg,
          select: Optional[list[str]] = SelectOpt,
          exclude: Optional[list[str]] = ExcludeOpt,
          samples: int = typer.Option(5, min=0, max=MAX_SAMPLES,
                                      help="Most duplicated keys shown per key (0: none)."),
          project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Count NULL and duplicated keys of each model of the selected syncs, in the warehouse.

    Per model (once, whatever the number of its syncs): its matching keys and its declared primary
    key. Over a sync's max_duplicate_pct the model is blocked (exit 1: `dinsync sync` would not run
    those syncs); under it, a warning (exit 4 with fail_on_warning)."""
    use_options(project_dir, json_output)
    with handled(), in_project():
        from dataclasses import asdict

        from .checks import check_models

        project, wh = load(destination_secrets=False, notification_secrets=False,
                           selection=lambda p: choose(p, names, select, exclude))
        try:
            report = check_models(project, wh, choose(project, names, select, exclude), samples=samples,
                                  redact=redaction.redact)
        finally:
            wh.close()
        if state.json:
            emit({"models": [asdict(m) for m in report.models], "exit_code": report.exit_code})
        else:
            terminal.print_check(report.models)
    raise typer.Exit(report.exit_code)


@app.command()
def init(path: Path = typer.Argument(..., metavar="DIR", parser=folder, help="Folder to create."),
         force: bool = typer.Option(False, help="Overwrite the scaffold's files where they exist (an existing "
                                                "warehouse.duckdb is kept)."),
         json_output: bool = JsonOpt) -> None:
    """Scaffold a project folder with an example model and sync."""
    refuse_project_options("init", "give the folder to create as its argument: `dinsync init DIR`")
    use_options(None, json_output)
    with handled():
        from .config import scaffold
        from .config.scaffold import KEY_ENV, scaffold_warehouse

        written = scaffold(path, force=force)
        written += [p for p in (scaffold_warehouse(path),) if p is not None]
        if state.json:
            emit({"created": [str(p) for p in written]})
        else:
            for p in written:
                out().print(f"created {p}", highlight=False)
            import shlex

            if not os.environ.get(KEY_ENV):  # else the next step fails on it (exit 3)
                out().print(f"first: export {KEY_ENV}=<your Iterable API key> (no account? {path / 'README.md'} "
                            "says how to use the local sandbox)", markup=False, highlight=False, soft_wrap=True)
            out().print(f"next: cd {shlex.quote(str(path))} && dinsync validate", highlight=False, soft_wrap=True)


SANDBOX_KEY = "sandbox-key"  # the key `dinsync sandbox` accepts without --api-key or $DINSYNC_SANDBOX_API_KEY


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def sandbox(ctx: typer.Context) -> None:
    """Serve a platform's sandbox on 127.0.0.1 for manual tries (Ctrl-C to stop).

    `dinsync sandbox [iterable|attio|attentive|splio] [OPTIONS]` (default: iterable), e.g.
    `dinsync sandbox attio --port 8766 --no-limits`; `dinsync sandbox --help` lists the platforms,
    `dinsync sandbox attio --help` a platform's options. The accepted API key is `--api-key`, else DINSYNC_SANDBOX_API_KEY, else
    `sandbox-key`."""
    from .sandbox.__main__ import main as sandbox_main

    refuse_project_options("sandbox", "the sandbox reads no project and writes no JSON: "
                           "`dinsync sandbox [PLATFORM] [--port P]`", json_too=True)
    args = list(ctx.args)
    if args and args[0] in ("--help", "-h"):  # the platforms, and how to get each one's options
        argv = ["--help"]
    else:
        # iterable only when no platform is named: a word that is no option is the platform, so a
        # mistyped one (`attentiv`) is argparse's "invalid choice", listing the platforms
        argv = args if args and not args[0].startswith("-") else ["iterable", *args]
    try:
        code = sandbox_main(argv, prog="dinsync sandbox", default_platform="iterable", default_key=SANDBOX_KEY)
    except SystemExit as exc:  # argparse: --help (0) or a usage error (2)
        code = exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    raise typer.Exit(code)


@app.command()
def demo(path: Path = typer.Option(Path("dinsync_demo"), parser=folder, help="Folder for the demo project and warehouse."),
         rows: int = typer.Option(10_000, min=1, help="Customers in the sample warehouse."),
         force: bool = typer.Option(False, help="Use a folder that holds files the demo did not create "
                                                "(they may be overwritten or deleted)."),
         json_output: bool = JsonOpt) -> None:
    """Offline demo: sample DuckDB warehouse + Iterable sandbox; sync, change data, sync again."""
    refuse_project_options("demo", "give the demo's folder as `dinsync demo --path DIR` (default: dinsync_demo)")
    use_options(None, json_output)
    with handled():
        from .demo import run_demo

        def say(text: str) -> None:
            out().print(text, highlight=False)

        report = run_demo(path, rows, say=None if state.json else say, force=force,
                          note=lambda text: err().print(text, markup=False, highlight=False))
        if state.json:
            emit(report)


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


def _json_requested(args: list[str]) -> bool:
    """`--json` among the command line's options (not after `--`, where it would be an argument)."""
    return "--json" in (args[:args.index("--")] if "--" in args else args)


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
        emit({"error": exc.format_message(), "hint": f"`{command} --help` lists the options",
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


if __name__ == "__main__":
    main()
