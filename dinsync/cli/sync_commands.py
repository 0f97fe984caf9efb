"""`plan` and `sync`: what the selected syncs would send, and sending it (a run's progress and output)."""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Optional

import typer

from .. import terminal
from ..errors import ConfigIssue
from ..terminal import emit, err, note, print_plan, print_run, print_traceback
from .shared import (MAX_COUNT, ExcludeOpt, JsonOpt, NamesArg, ProjectDirOpt, SelectOpt, app, debug, handled,
                     in_project, load_chosen, make_operator, state, use_options)


@app.command()
def plan(names: Optional[list[str]] = NamesArg,
         select: Optional[list[str]] = SelectOpt,
         exclude: Optional[list[str]] = ExcludeOpt,
         full_refresh: bool = typer.Option(False, "--full-refresh", help="Plan as if nothing had been sent."),
         samples: int = typer.Option(3, min=0, max=MAX_COUNT, metavar="N", help="Sample rows per kind of change."),
         project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Dry run: what each sync would send, per field. Nothing is sent, nothing is committed."""
    use_options(project_dir, json_output)
    with handled(), in_project():
        from ..operations import plan_syncs

        project, wh, chosen = load_chosen(names, select, exclude)
        try:  # each sync is planned whatever the others did, as `sync` runs them
            report, errors, exit_code = plan_syncs(project, wh, list(chosen), full_refresh=full_refresh,
                                                   samples=samples, on_exception=debug_traceback)
        finally:
            wh.close()
        if state.json:
            emit({"plans": report} if not errors else {"plans": report, "exit_code": exit_code, "errors": errors})
        else:
            for entry in report:
                print_plan(entry)
            for error in errors:
                err().print(f"[bold red]error:[/] {terminal.escape(error['sync'])}: " + terminal.escape(error["error"]),
                            highlight=False)
                if error["hint"]:
                    err().print("[dim]hint: " + terminal.escape(error["hint"]) + "[/]", highlight=False)
    raise typer.Exit(exit_code)


@app.command()
def sync(names: Optional[list[str]] = NamesArg,
         select: Optional[list[str]] = SelectOpt,
         exclude: Optional[list[str]] = ExcludeOpt,
         full_refresh: bool = typer.Option(False, "--full-refresh", help="Send every row again."),
         retry_rejected: bool = typer.Option(False, "--retry-rejected",
                                             help="Send rows parked as rejected again, even if unchanged."),
         force: bool = typer.Option(False, "--force", help="Run paused syncs too (their pause stays), and send "
                                                           "a change over thresholds.max_changed_pct or max_removed_pct."),
         project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Bring each selected destination up to date with its model.

    A paused sync is refused (exit 6) unless --force; an automatically paused one is checked
    first and runs when its checks pass again (see `dinsync pause`). A sync whose plan would change
    or remove more of the rows delivered before than its thresholds.max_changed_pct or
    max_removed_pct fails before sending (exit 1) unless --force.

    SIGTERM / SIGINT stop gracefully: no new batch is read, requests in flight finish (at most
    DINSYNC_GRACE_SECONDS), acknowledged rows are committed, the run is recorded as `cancelled`
    and the command exits 128 + the signal number. A second signal exits at once (still safe)."""
    use_options(project_dir, json_output)
    terminal.keep_going_on_broken_pipe()  # `dinsync sync | head -1`: the output is cut, not the runs
    from ..engine import StopToken, stop_on_signals

    stop = StopToken()

    def on_signal(name: str) -> None:
        err().print(f"{name}: stopping after the requests in flight (send it again to exit at once)",
                    markup=False, highlight=False)

    with handled(), in_project(), stop_on_signals(stop, on_signal):
        from ..operations import run_syncs, sync_exit_code
        from ..progress import line_interval

        line_interval()  # an unusable DINSYNC_PROGRESS_SECONDS stops here, before any run
        project, wh, chosen = load_chosen(names, select, exclude)
        try:
            results = run_syncs(project, wh, chosen, full_refresh=full_refresh,
                                retry_rejected=retry_rejected, stop=stop, progress_for=progress_for,
                                on_exception=debug_traceback, on_run=print_run_and_issues,
                                operator=make_operator(project, wh, stop), force=force, log=note)
        finally:
            wh.close()
        runs = [run for run, _ in results]
        exit_code = sync_exit_code(results, stop)
        if state.json:
            emit({"runs": runs, "exit_code": exit_code})
        elif (told := not_succeeded_note(runs)) is not None:
            note(told)
    raise typer.Exit(exit_code)


def not_succeeded_note(runs: list[dict]) -> str | None:
    """Of several syncs, those that did not succeed, by status: in a project of 300 syncs, the one
    that failed is one line among 300 (None when every one succeeded, or only one ran)."""
    from ..config.yamlfile import listing

    if len(runs) < 2:
        return None
    by_status: dict[str, list[str]] = {}
    for run in runs:
        if run.get("status") != "success":
            by_status.setdefault(str(run.get("status")), []).append(str(run.get("sync")))
    if not by_status:
        return None
    count = sum(len(names) for names in by_status.values())
    return (f"{count} of {len(runs)} syncs did not succeed: "
            + "; ".join(listing(names, status) for status, names in sorted(by_status.items())))


def run_sync(project, wh, name: str, full_refresh: bool, *, retry_rejected: bool = False,
             stop=None, errors: list | None = None, refresh_dbt: bool = False) -> tuple[dict, int]:
    """Run one sync; its run object and exit code (see `dinsync.operations.run_sync`)."""
    from ..operations import run_sync as run_one

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
    from ..progress import LineProgress, bar_progress

    def write(text: str) -> None:
        err().print(terminal.visible(text), markup=False, highlight=False)

    if state.json or state.quiet_progress:
        yield LineProgress(name, write, notes_only=True)
    elif err().file.isatty() and not err().is_dumb_terminal:  # a real terminal (rich's is_terminal also
        # says yes to FORCE_COLOR in CI); on TERM=dumb rich draws no live bar: no progress was shown at all
        with bar_progress(name, err()) as on_event:
            yield on_event
    else:
        yield LineProgress(name, write)
