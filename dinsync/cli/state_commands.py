"""The commands on the syncs' state in the warehouse: status, pause, resume, runs and rejections."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from ..errors import ConfigError, ConfigIssue, DinsyncError, ExitCode
from ..report import REJECTION_STATUSES
from ..terminal import emit, note, print_rejections, print_runs, print_syncs
from .shared import (MAX_COUNT, ExcludeOpt, JsonOpt, NamesArg, OneSyncArg, ProjectDirOpt, SelectOpt, app, choose, handled,
                     in_project, load, make_operator, state, use_options)


@app.command()
def status(names: Optional[list[str]] = NamesArg,
           select: Optional[list[str]] = SelectOpt,
           exclude: Optional[list[str]] = ExcludeOpt,
           limit: int = typer.Option(5, min=1, max=MAX_COUNT, metavar="N", help="Runs per sync in --json's `runs`."),
           project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """One line per sync (disabled ones included): its state, last run, counts, parked rows, and
    why it is paused or warned, from the state tables in the warehouse."""
    use_options(project_dir, json_output)
    with handled(), in_project():
        from ..operations import status_data

        project, wh = load(check_models=False, destination_secrets=False, notification_secrets=False)
        try:
            data = status_data(project, wh, choose(project, names, select, exclude, include_disabled=True), limit)
        finally:
            wh.close()
        if state.json:
            emit(data)
            return
        print_syncs(data["syncs"])


def _pause_or_resume(names: list[str], reason: Optional[str], pausing: bool) -> None:
    with handled(), in_project():
        from ..ops.status import sync_statuses

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
          reason: Optional[str] = typer.Option(None, "--reason", metavar="TEXT", help="Shown in status and notifications."),
          project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Pause syncs by hand: scheduled runs skip them, `sync` refuses them, until `dinsync resume`."""
    use_options(project_dir, json_output)
    if reason is not None:  # bytes of another encoding (a Latin-1 terminal's é) arrive as lone
        # surrogates, which no warehouse stores: each shown as U+FFFD instead
        reason = reason.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
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
    from ..config.yamlfile import listing
    from ..selection import is_glob

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
        raise SyncNotNamed(f"name a sync: the project has {len(project.syncs)}", listing(project.syncs, "syncs"))
    chosen = choose(project, [name], None, None, include_disabled=True)
    if is_glob(name) or len(chosen) != 1:
        raise ConfigError([ConfigIssue(f"name one sync, not {name!r}", hint=listing(project.syncs, "syncs"))])
    return chosen[0]


@app.command()
def runs(name: Optional[str] = OneSyncArg,
         limit: int = typer.Option(20, min=1, max=MAX_COUNT, metavar="N", help="Newest runs to show."),
         project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """A sync's runs, newest first, from the run log."""
    use_options(project_dir, json_output)
    with handled(), in_project():
        from ..ops.status import settle_dead_runs
        from ..report import run_from_log
        from ..state import StateStore

        project, wh = load(check_models=False, destination_secrets=False, notification_secrets=False)
        try:
            store = StateStore(wh, project.state_schema)
            store.migrate()
            name = _one_sync(project, name, store)
            rows = store.last_runs(sync=name, limit=limit + 1)  # (one more: whether the limit left some out)
            if rows and settle_dead_runs(store, {name: rows[0]}, [name]):  # `abandoned`, as `status` shows it
                rows = store.last_runs(sync=name, limit=limit + 1)
            found = [run_from_log(r) for r in rows[:limit]]
        finally:
            wh.close()
        if state.json:
            emit({"runs": found})
        else:
            print_runs(found, more=len(rows) > limit)


@app.command()
def rejections(name: Optional[str] = OneSyncArg,
               run_id: Optional[str] = typer.Option(None, "--run", metavar="RUN_ID", help="Only this run's rows."),
               limit: int = typer.Option(100, min=1, max=MAX_COUNT, metavar="N", help="Newest rows to show."),
               status: Optional[list[str]] = typer.Option(
                   None, "--status", metavar="S",
                   help=f"Only rows of this status (repeat or comma-separate): {', '.join(REJECTION_STATUSES)}."),
               project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Rows a sync could not deliver (rejected, not found, failed, duplicate keys withheld, rows
    without a key skipped) with their reasons, newest first."""
    statuses = _statuses(status)
    use_options(project_dir, json_output)
    with handled(), in_project():
        from ..report import utc_iso
        from ..state import StateStore
        from ..state.syncstate import SyncStates

        project, wh = load(check_models=False, destination_secrets=False, notification_secrets=False)
        try:
            store = StateStore(wh, project.state_schema)
            store.migrate()
            name = _one_sync(project, name, store)
            rows = SyncStates(store).rejections(name, run_id, limit + 1, statuses)  # (as runs)
            more, rows = len(rows) > limit, rows[:limit]
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
            print_rejections(rows, more)


def _statuses(given: Optional[list[str]]) -> tuple[str, ...]:
    """`--status`, repeated or comma-separated: the statuses of the rejections table (every run
    lists its duplicated keys and keyless rows again, so the rows parked for their content, listed
    once by the run that refused them, are soon far down); another word is a usage error (exit 2)."""
    picked = [s.strip() for text in given or () for s in text.split(",") if s.strip()]
    unknown = [s for s in picked if s not in REJECTION_STATUSES]
    if unknown:
        raise typer.BadParameter(f"unknown status {', '.join(map(repr, unknown))}: one of "
                                 f"{', '.join(REJECTION_STATUSES)}", param_hint="'--status'")
    return tuple(dict.fromkeys(picked))
