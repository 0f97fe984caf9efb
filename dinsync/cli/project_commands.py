"""The commands on a project as a whole: validate, check (its models' keys), init and demo (a new one)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional

import typer

from .. import redaction, terminal
from ..errors import ConfigError, ConfigIssue, DinsyncError
from ..terminal import emit, err, out
from .shared import (MAX_COUNT, ExcludeOpt, JsonOpt, NamesArg, ProjectDirOpt, SelectOpt, app, choose, folder,
                     handled, in_project, load, make_operator, refuse_project_options, state, use_options)


@app.command()
def validate(offline: bool = typer.Option(False, "--offline", help="Do not ask the platforms to check mappings and credentials."),
             project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Check every project file, model columns in the warehouse, that the state schema can be used
    (created where missing, tables created in it: tried and rolled back), each mapping against its
    platform's schema (destinations with a pre-flight check, e.g. Attio attributes, Splio fields)
    and each destination's credentials (a read-only lookup where it has one); report all errors at
    once."""
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
    """Pre-flight checks of the enabled syncs whose destination has one and, once per destination
    with lookups (Iterable, Attentive), the health check's read-only lookup for its credentials, by
    the first of its syncs that can make one (nothing is sent); those whose platform could not be
    reached are `UncheckedSync`s."""
    from ..destinations.base import Destination
    from ..errors import DestinationUnreachableError
    from ..ops.health import validate_access

    issues: list[ConfigIssue] = []
    # a destination found unreachable, and the sync that found it: its other syncs are not checked
    # (each waited out every retry again: 300 syncs of a platform that does not answer, hours)
    unreachable: dict[str, str] = {}
    accessed: set[str] = set()  # destinations whose credentials were checked (by a sync's lookup)
    for name, cfg in sorted(project.syncs.items()):
        dest_cfg = project.destinations[cfg.destination]
        if not cfg.enabled:
            continue
        checks = []
        if dest_cfg.destination_class.preflight is not Destination.preflight:
            from ..engine import preflight_sync  # only when a platform has something to check

            checks.append(preflight_sync)
        if cfg.destination not in accessed:
            checks.append(validate_access)
        if not checks:
            continue
        if cfg.destination in unreachable:
            issues.append(UncheckedSync(
                f"pre-flight check of sync {name} not run: destination {cfg.destination} could not be "
                f"reached for sync {unreachable[cfg.destination]}", project.relative(cfg.path), None,
                "check the destination's base_url and the platform's status, or pass --offline"))
            continue
        try:
            for check in checks:
                if check is not validate_access:
                    issues += check(project, name)
                elif validate_access(project, name):  # (a sync that can make no lookup checked nothing)
                    accessed.add(cfg.destination)
        except DinsyncError as exc:  # unreachable platform, refused credentials: say which sync
            kind = UncheckedSync if isinstance(exc, DestinationUnreachableError) else ConfigIssue
            if kind is UncheckedSync:
                unreachable[cfg.destination] = name
            else:
                accessed.add(cfg.destination)  # (said once, for the first of its syncs)
            issues.append(kind(f"pre-flight check of sync {name} failed: {redaction.redact(exc.message)}",
                                      project.relative(cfg.path), None,
                                      exc.hint or "check the destination's base_url and credentials, or pass --offline"))
        except Exception as exc:  # a bug of the destination's hook (a plugin's): the other syncs are still checked
            issues.append(ConfigIssue(
                redaction.redact(f"pre-flight check of sync {name} failed: {dest_cfg.type}'s preflight raised "
                                 f"{type(exc).__name__}: {exc}"),
                project.relative(cfg.path), None, "a bug of that destination's code; --offline skips the check"))
    return issues


def recheck_paused(project, wh, recheck: bool = True) -> list[dict]:
    """`validate`: check that dinsync's role can use the state schema as a run would (create it
    where it does not exist, and tables in it: tried in a transaction rolled back, see
    StateStore.try_writes; a refusal is exit 3, as the run's), then check the automatically paused
    syncs again (resuming those that pass) and list every paused one. Reads nothing when the state
    tables predate pauses. `recheck=False` (`--offline`): listed only; a check asks the platform
    with the credentials, and a resume writes an event and notifies."""
    from ..state import StateStore

    store = StateStore(wh, project.state_schema)
    layout = store.check_tables()  # tables of the state layout's names that are not dinsync's: exit 3
    store.try_writes()
    if layout < 4:
        return []
    from ..state.syncstate import SyncStates

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


# --- dinsync check (issue 16: primary keys) -----------------------------------------------------

@app.command()
def check(names: Optional[list[str]] = NamesArg,
          select: Optional[list[str]] = SelectOpt,
          exclude: Optional[list[str]] = ExcludeOpt,
          samples: int = typer.Option(5, min=0, max=MAX_COUNT, metavar="N",
                                      help="Most duplicated keys shown per key (0: none)."),
          project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Count NULL and duplicated keys of each model of the selected syncs, in the warehouse.

    Per model (once, whatever the number of its syncs): its matching keys and its declared primary
    key. Over a sync's max_duplicate_pct the model is blocked (exit 1: `dinsync sync` would not run
    those syncs); under it, a warning (exit 4 with fail_on_warning)."""
    use_options(project_dir, json_output)
    with handled(), in_project():
        from dataclasses import asdict

        from ..checks import check_models

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
        from ..config import scaffold
        from ..config.scaffold import KEY_ENV

        written = scaffold(path, force=force, warehouse=True)
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


@app.command()
def demo(path: Path = typer.Option(Path("dinsync_demo"), parser=folder, metavar="DIR", help="Folder for the demo project and warehouse."),
         rows: int = typer.Option(10_000, min=1, metavar="N", help="Customers in the sample warehouse."),
         force: bool = typer.Option(False, help="Use a folder that holds files the demo did not create "
                                                "(they may be overwritten or deleted)."),
         json_output: bool = JsonOpt) -> None:
    """Offline demo: sample DuckDB warehouse + Iterable sandbox; sync, change data, sync again."""
    refuse_project_options("demo", "give the demo's folder as `dinsync demo --path DIR` (default: dinsync_demo)")
    use_options(None, json_output)
    with handled():
        from ..demo import run_demo

        def say(text: str) -> None:
            out().print(text, highlight=False)

        report = run_demo(path, rows, say=None if state.json else say, force=force,
                          note=lambda text: err().print(text, markup=False, highlight=False))
        if state.json:
            emit(report)
