"""What the commands do, without a terminal: the one implementation behind the CLI and the
Python API (`dinsync.api`). Nothing here prints; output goes through callbacks.

- `load()` / `connect_warehouse()`: the project, validated, and its warehouse.
- `run_syncs()`: run the selected syncs one after the other; a model blocked by its duplicated
  keys (see `dinsync.diff.keycheck`) stops the model's other syncs without planning them again.
- `plan_sync()`, `status_data()`: the data of `dinsync plan` and `dinsync status`.
Results are run objects (`dinsync.report`) and exit codes (`dinsync.errors.ExitCode`).
"""
from __future__ import annotations

import contextlib
import os
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, ContextManager, Iterator

from . import redaction
from .destinations import describe_error
from .errors import ConfigError, ConfigIssue, DinsyncError, DuplicateKeysError, ExitCode, resource_hint

DEBUG_ENV = "DINSYNC_DEBUG"
# The largest count of rows to show (`--samples`, `--limit`, the API's `samples` and `limit`): each
# becomes a LIMIT in the warehouse's SQL, and a count none of them takes (`plan --samples 10**20`,
# `rejections --limit 2**63`) failed there with a conversion error (exit 1)
MAX_COUNT = 1_000_000_000
ProgressFor = Callable[[str], ContextManager[Any]]  # sync name -> context yielding a progress callback


WORKING_DIR_LOCK = threading.RLock()  # the working directory is the process's: one call at a time


@contextlib.contextmanager
def working_dir(root: Path) -> Iterator[Path]:
    """Run with the project folder as working directory (model SQL may read relative files). A
    call from another thread waits until the running one is done (and has moved back)."""
    with WORKING_DIR_LOCK:
        previous, handle = None, None
        try:
            previous = os.getcwd()
        except FileNotFoundError:  # the process's working directory was removed (a long-lived worker
            handle = os.open(".", os.O_RDONLY)  # after a deployment): moved back to all the same
        try:
            os.chdir(root)
            try:
                yield root
            finally:
                if previous is not None:
                    os.chdir(previous)
                else:
                    os.fchdir(handle)
        finally:
            if handle is not None:
                os.close(handle)


def load(check_models: bool = True, root: Path | None = None,
         syncs: Callable[[Any], list[str]] | None = None, destination_secrets: bool = True,
         notification_secrets: bool = True, connect: bool = True,
         selection: Callable[[Any], list[str]] | None = None):
    """Load and fully validate the project in `root` (default: the working directory); open its
    warehouse. Raises ConfigError with every issue, model columns included (checked in the same
    pass whenever the warehouse can be opened). `check_models=False` (commands that only read the
    run log): no column check, and dbt refs that cannot be resolved are not an error. `syncs`
    (project -> the syncs a command runs): only their models' columns are checked, and only their
    models' dbt refs must resolve (a model dbt failed to build stops only the syncs reading it);
    what is wrong with the selection is reported first, also when the project fails to load (an
    unset secret). `destination_secrets=False`: for commands that send nothing, `notification_secrets=False`: for
    commands that notify nobody (see `load_project`). A DuckDB file that does not exist is a
    configuration error, never created (a mistyped path would start an empty warehouse and state).
    `connect=False` (with `check_models=False`): the warehouse is not opened, (project, None).
    `selection` (as `syncs`, for `check`, which checks every model): only to report what is wrong
    with it first when the project fails to load."""
    from .config import check_columns, load_project, load_warehouse_config
    from .config.columns import sort_issues
    from .warehouses.errors import WarehouseError

    root = Path(".") if root is None else Path(root)

    def columns_of(wh):
        # (name, type, problem, send problem): types are checked too, what this warehouse cannot
        # diff and what its driver reads into other values than the model's
        return lambda model: [(n, k, wh.column_problem(n, k), wh.send_problem(n, k)) for n, k in wh.columns(model.sql)]

    chosen = failure = None
    try:
        project = load_project(root, dbt_strict=check_models and syncs is None, warehouse_must_exist=True,
                               destination_secrets=destination_secrets, notification_secrets=notification_secrets)
    except ConfigError as exc:
        failure = exc  # unless only the secrets of destinations the chosen syncs do not use are missing:
        scoped = _scoped_to_chosen(root, syncs, notification_secrets) if syncs and destination_secrets else None
        if scoped is not None:
            project, chosen = scoped
    if failure is not None and chosen is None:
        everything = failure
        if check_models:
            # The rest of the project is broken; its warehouse section alone may still be valid:
            # check the model columns too, so that one pass reports everything. Never create a
            # warehouse for that.
            cfg = load_warehouse_config(root)
            try:
                wh = connect_warehouse(cfg, root.resolve(), create=False) if cfg is not None else None
            except WarehouseError:  # cannot be reached: the issues found so far (a key written in the
                wh = None           # file, say), not a "run again later" hiding them
            if wh is not None:
                try:
                    load_project(root, columns_of=columns_of(wh), destination_secrets=destination_secrets,
                                 notification_secrets=notification_secrets, warehouse_must_exist=True)
                except ConfigError as full:
                    everything = full
                except WarehouseError:  # a transient failure of the column check: the issues found so far
                    pass
                finally:
                    wh.close()
        chooser = syncs or selection
        typos = _selection_issues(root, chooser) if chooser is not None else []
        if typos:  # first: fixing them needs no credentials
            raise ConfigError([*typos, *everything.issues]) from None
        raise everything
    if syncs is not None:
        try:
            chosen = syncs(project) if chosen is None else chosen
        except ConfigError as exc:  # e.g. `tag:x` selects nothing: the tags of unresolved models are unknown
            if not check_models:
                raise
            # (a model reading a dbt model that failed or is stale still has its tags: its issues are
            # not this command's, whose selection is what to fix)
            unknown = [n for n, s in project.syncs.items()
                       if s.model in project._dbt_problems and not project.models[s.model].dbt_models]
            issues = project.dbt_issues_of(unknown) if unknown else []
            if issues:
                raise ConfigError(sort_issues([*exc.issues, *issues])) from None
            raise
        issues = project.dbt_issues_of(chosen) if check_models else []
        if issues:
            raise ConfigError(sort_issues(issues))
    if not connect and not check_models:
        return project, None
    wh = connect_warehouse(project.warehouse, project.root)
    if check_models:
        try:
            issues = sort_issues([*_table_name_issues(project, wh, chosen),
                                  *check_columns(project, columns_of(wh), chosen)])
        except BaseException:
            wh.close()
            raise
        if issues:
            wh.close()
            raise ConfigError(issues)
    return project, wh


def _scoped_to_chosen(root: Path, syncs: Callable[[Any], list[str]], notification_secrets: bool):
    """(project, chosen syncs) loaded with the secrets of the chosen syncs' destinations only, or
    None: a job holding the Iterable key runs `dinsync sync iterable_users` in a project that also
    sends to Attio, whose key it does not hold (as a model only other syncs read does not stop it).
    None when the project has other problems or the chosen syncs lack their own secrets: the
    command then reports everything, as before."""
    from .config import load_project

    try:
        project = load_project(root, dbt_strict=False, warehouse_must_exist=True, destination_secrets=False,
                               notification_secrets=notification_secrets)
        chosen = syncs(project)
        needed = frozenset(project.syncs[name].destination for name in chosen)
        return load_project(root, dbt_strict=False, warehouse_must_exist=True, destination_secrets=needed,
                            notification_secrets=notification_secrets), chosen
    except ConfigError:
        return None


def _table_name_issues(project, wh, chosen: list[str] | None) -> list[ConfigIssue]:
    """A sync whose name makes table names longer than the warehouse's identifiers (PostgreSQL:
    63 bytes), reported at its file before anything is sent."""
    from .diff.spec import LONGEST_PREFIX, check_table_names
    from .warehouses.errors import WarehouseSqlError

    issues = []
    for name in project.syncs if chosen is None else chosen:
        try:
            check_table_names(wh, name)
        except WarehouseSqlError as exc:
            limit = wh.capabilities.max_identifier_length - len(LONGEST_PREFIX) - 1
            issues.append(ConfigIssue(f"sync name {name!r} is too long for this warehouse: {exc.message}",
                                      project.relative(project.syncs[name].path), None,
                                      f"rename the sync file: a name of at most {limit} characters (it becomes "
                                      "part of table names)"))
    return issues


def _selection_issues(root: Path, syncs: Callable[[Any], list[str]]) -> list:
    """What is wrong with a command's selection (`syncs`, as in `load`) in a project that failed
    to load: read again without the credentials a selection never needs, so that a typo in
    --select is reported with an unset ${env:NAME}, not once it is set. [] when the selection is
    right, or the project has other problems too."""
    from .config import load_project

    try:
        project = load_project(root, dbt_strict=False, destination_secrets=False, notification_secrets=False)
    except ConfigError:
        return []
    try:
        syncs(project)
    except ConfigError as exc:
        return list(exc.issues)
    return []


def no_project_hint(root: Path, default: str, pass_it: str) -> str:
    """The hint for a folder without dinsync.yml: a dinsync.yaml to rename, a project in a parent
    folder (a command run from models/, say; `dinsync init` there would scaffold a second project
    inside the first), a dinsync.yml that is a folder, a folder that does not exist, else `default`."""
    if (root / "dinsync.yml").is_dir():
        return f"{root / 'dinsync.yml'} is a folder, not a file: put the project file there instead"
    if not root.exists():
        return f"the folder {root} does not exist: pass {pass_it} the folder that holds dinsync.yml"
    if (root / "dinsync.yaml").is_file():
        return "rename dinsync.yaml to dinsync.yml"
    parent = next((p for p in root.parents if (p / "dinsync.yml").is_file()), None)
    if parent is not None:
        return f"the project is {parent}: run dinsync there, or pass {pass_it} {parent}"
    return default


def connect_warehouse(cfg, root: Path, create: bool = True):
    """Connect to the warehouse a validated `warehouse:` config describes (paths relative to root).
    `create=False`: None instead of creating a warehouse file that does not exist yet."""
    from .warehouses import connect

    options = cfg.model_dump(exclude={"type"}, by_alias=True)
    if hasattr(cfg, "resolved_path"):
        options["path"] = cfg.resolved_path(root)
        if not create and options["path"] != ":memory:" and not Path(options["path"]).exists():
            return None
    return connect(cfg.type, **{k: v for k, v in options.items() if v is not None})


def connect_existing(cfg, root: Path):
    """connect_warehouse for the runs of a long-lived process (`serve`), validated at its start: a
    DuckDB file gone since (deleted, moved, a build replacing it) is a warehouse that cannot be
    reached until it is back, not a new empty file created in its place."""
    wh = connect_warehouse(cfg, root, create=False)
    if wh is None:
        from .warehouses.errors import WarehouseUnavailable

        raise WarehouseUnavailable(
            f"DuckDB: warehouse.path {cfg.resolved_path(root)} does not exist (deleted or moved since this process "
            "started?)", "dinsync never creates the warehouse file: build it again (dbt) or fix warehouse.path",
            warehouse="DuckDB")
    return wh


def select(project, names=None, select=None, exclude=None, *, include_disabled: bool = False):
    """The syncs a command acts on (rules in `dinsync.selection`): a Selection (names, notes)."""
    from .selection import select_syncs

    return select_syncs(project.syncs, [*(names or ()), *(select or ())], exclude,
                        include_disabled=include_disabled, models=project.models, named=names or ())


# --- sync ----------------------------------------------------------------------------------------

@contextlib.contextmanager
def _no_progress(name: str) -> Iterator[Callable]:
    yield lambda event, data: None


def _let_go(exc: BaseException) -> BaseException:
    """`exc`, its tracebacks dropped (its own and those of the exceptions it was raised from) once
    `on_exception` has seen it: a traceback holds the frames it went through, and they held the
    exception again (the caller's list of why runs failed, contextlib's `value`), so each failed
    run stayed in a reference cycle with its engine, planner and connection until a full collection
    (`serve`, the Python API). What is kept is the exceptions' types and messages."""
    import traceback

    todo, seen = [exc], set()
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if e.__traceback__ is not None:
            traceback.clear_frames(e.__traceback__)  # (skips the frames still running)
            e.__traceback__ = None
        todo += [e.__cause__, e.__context__]
    return exc


def _ignore(exc: BaseException) -> None:
    pass


def refresh_dbt_model(project, name: str) -> None:
    """`serve`, before each run of a sync whose model reads dbt models: the dbt project is read
    again, as every command reads it (the service's project was loaded once): a build since then
    that failed for the dbt model, skipped it, ran `--empty` or left the manifest stale refuses the
    run (ConfigError, exit 3, as `dinsync sync` does), and the model's SQL follows the latest
    manifest. Without it, a `dbt build --empty` under a running service emptied the segment:
    every delivered key left the snapshot, and all were sent again after the next real build."""
    from .config import load_project
    from .config.columns import sort_issues

    model = project.syncs[name].model
    known = project.models.get(model)
    if model not in project._dbt_problems and not (known is not None and known.dbt_models):
        return  # reads no dbt model
    fresh = load_project(project.root, dbt_strict=False)
    issues = fresh.dbt_issues_of([name])
    if issues:
        raise ConfigError(sort_issues(issues))
    if model in fresh.models:
        project.models[model] = fresh.models[model]


def run_sync(project, wh, name: str, full_refresh: bool = False, *, retry_rejected: bool = False, stop=None,
             progress_for: ProgressFor = _no_progress,
             on_exception: Callable[[BaseException], None] = _ignore,
             errors: list | None = None, refresh_dbt: bool = False, force: bool = False) -> tuple[dict, int, Any]:
    """Run one sync: (run object, exit code, the engine or None). A failure is reported in the
    run object, not raised: the other selected syncs still run. `on_exception` sees the exception
    behind a failure (the CLI prints its traceback with DINSYNC_DEBUG=1); `errors`, when given,
    receives it (the operator reads why a run failed). `refresh_dbt` (`serve`): see
    `refresh_dbt_model`. `force`: past the sync's `max_changed_pct` and `max_removed_pct`."""
    from .engine import SyncRun
    from .report import failed_run, run_from_summary, utcnow

    started = utcnow()
    engine = None
    try:
        if refresh_dbt:
            refresh_dbt_model(project, name)
        with progress_for(name) as progress:
            engine = SyncRun(project, name, wh, full_refresh=full_refresh, retry_rejected=retry_rejected,
                             progress=progress, stop=stop, force=force)
            try:
                summary = engine.run()
            finally:
                engine.planner.release()
    except DinsyncError as exc:
        if exc.__cause__ is not None:
            on_exception(exc)
        if errors is not None:
            errors.append(_let_go(exc))
        summary = getattr(engine, "summary", None)
        if summary is None:
            run = failed_run(name, exc.message, exc.hint, started_at=started, full_refresh=full_refresh)
        else:
            run = run_from_summary(summary, logged_run(project, wh, name, summary.run_id, engine.stop),
                                   full_refresh=engine.full_refresh, started_at=started, hint=exc.hint,
                                   recorded=getattr(engine, "recorded", False))
            run["error"] = run["error"] or redaction.redact(exc.message)
            if run["status"] in ("success", "warning") and not getattr(engine, "end_recorded", False):
                run["status"] = "failed"  # its end could not be recorded: it fails, as its exit code says
        if isinstance(exc, ConfigError):
            run["issues"] = [issue.as_dict() for issue in exc.issues]
        return run, exc.exit_code, engine
    except Exception as exc:  # a bug: this sync fails, the others still run
        message = redaction.redact(f"unexpected error: {describe_error(exc)}")  # (before its traceback goes)
        on_exception(exc)
        if errors is not None:
            errors.append(_let_go(exc))
        return failed_run(name, message, resource_hint(exc) or f"set {DEBUG_ENV}=1 for a traceback",
                          started_at=started, full_refresh=full_refresh), ExitCode.RUN_FAILED, engine
    # (engine.full_refresh: also a run that sends everything to a sync's new destination)
    run = run_from_summary(summary, logged_run(project, wh, name, summary.run_id, engine.stop),
                           full_refresh=engine.full_refresh,
                           started_at=started, hint=engine.hint, recorded=getattr(engine, "recorded", False))
    if summary.status == "cancelled":
        return run, stop.exit_code, engine
    if summary.status == "failed":
        return run, ExitCode.RUN_FAILED, engine
    if summary.status == "warning" and project.syncs[name].thresholds.fail_on_warning:
        return run, ExitCode.WARNINGS, engine
    return run, ExitCode.OK, engine


def make_operator(project, wh, log: Callable[[str], None] = _ignore, stop=None):
    """The project's operating state (pauses, notifications: dinsync.ops.operate), or None when
    the state tables cannot be read: the runs then go ahead unguarded and report the
    warehouse's error themselves. `stop` (a StopToken) ends the notifications' retries."""
    from .ops.notify import Notifier
    from .ops.operate import Operator
    from .warehouses.errors import WarehouseStateRefused

    try:
        return Operator(project, wh, Notifier(project.notifications, project=project.root.name, log=log, stop=stop),
                        log=log)
    except (ConfigError, WarehouseStateRefused):  # e.g. the state schema holds tables that are not
        raise  # dinsync's, or dinsync's role may not use it (a grant to give): nothing may run
    except Exception as exc:
        log(redaction.redact(f"could not read the syncs' operating state: {type(exc).__name__}: {exc}"))
        return None


def operated_run(operator, project, wh, name: str, full_refresh: bool = False, *, retry_rejected: bool = False,
                 stop=None, force: bool = False, progress_for: ProgressFor = _no_progress,
                 on_exception: Callable[[BaseException], None] = _ignore,
                 log: Callable[[str], None] = _ignore) -> tuple[dict, int, Any]:
    """`run_sync` behind the pause guard, followed by the sync's state change (pause,
    notification). A refused (paused) sync's run object has status `paused` and its issues."""
    from .report import failed_run, utcnow

    if operator is not None:
        try:
            refusal = operator.guard(name, force=force)
        except Exception as exc:  # the state table failed: the run reports the warehouse's error itself
            log(redaction.redact(f"could not read the state of sync {name}: {type(exc).__name__}: {exc}"))
            refusal = None
        if refusal is not None:
            run = failed_run(name, refusal.message, refusal.hint, started_at=utcnow(), full_refresh=full_refresh)
            run["status"] = "paused"
            run["issues"] = [issue.as_dict() for issue in refusal.issues]
            return run, refusal.exit_code, None
    errors: list = []
    run, code, engine = run_sync(project, wh, name, full_refresh, retry_rejected=retry_rejected, stop=stop,
                                 progress_for=progress_for, on_exception=on_exception, errors=errors, force=force)
    if operator is not None and operator.after_run(name, run, code, errors[0] if errors else None) == "paused":
        log(f"sync {name} is now paused; it resumes by itself once its checks pass (`dinsync status` says why)")
    return run, code, engine


def run_syncs(project, wh, names: list[str], *, full_refresh: bool = False, retry_rejected: bool = False,
              stop=None, progress_for: ProgressFor = _no_progress,
              on_exception: Callable[[BaseException], None] = _ignore,
              on_run: Callable[[dict], None] | None = None, operator=None, force: bool = False,
              log: Callable[[str], None] = _ignore) -> list[tuple[dict, int]]:
    """Run `names` in order: [(run object, exit code)]. Each sync runs whatever the others did,
    except that a model found blocked (its matching key's duplicate share over a sync's
    `max_duplicate_pct`) blocks its later syncs on the same key without planning them: they fail
    with the same message. With an `operator` (see `make_operator`), paused syncs are refused
    (unless `force`) and each run may pause its sync or notify. `on_run` sees each run object as
    soon as it is known."""
    from .diff.keycheck import blocked_hint, blocked_message
    from .engine.run import sync_key
    from .report import failed_run, utcnow

    figures_by_key: dict[tuple, Any] = {}
    results: list[tuple[dict, int]] = []
    for i, name in enumerate(names):
        if stop is not None and stop.requested:
            for later in names[i:]:  # listed, so that `sync --json` accounts for every selected sync
                results.append((not_started_run(later, stop, full_refresh), stop.exit_code))
                if on_run is not None:
                    on_run(results[-1][0])
            break
        key = sync_key(project, name)
        figures = figures_by_key.get(key)
        limit = project.syncs[name].thresholds.max_duplicate_pct
        # a paused sync is refused as paused (operated_run's guard), whatever its model holds
        paused = operator is not None and not force and operator.states.get(name).paused
        if figures is not None and figures.duplicate_pct > limit and not paused:
            run = failed_run(name, redaction.redact(blocked_message(figures, limit, name, redaction.redact)),
                             blocked_hint(figures), started_at=utcnow(), full_refresh=full_refresh,
                             counts={"segment_rows": figures.rows, "null_keys": figures.null_keys,
                                     "duplicate_keys": figures.duplicate_keys})  # what the message is about
            code = DuplicateKeysError.exit_code
            if operator is not None:  # its channels hear it failed, as they would from its own run
                operator.after_run(name, run, code)
        else:
            run, code, engine = operated_run(operator, project, wh, name, full_refresh, retry_rejected=retry_rejected,
                                             stop=stop, force=force, progress_for=progress_for,
                                             on_exception=on_exception, log=log)
            if getattr(engine, "key_figures", None) is not None:
                figures_by_key[key] = engine.key_figures
        results.append((run, code))
        if on_run is not None:
            on_run(run)
    return results


def not_started_run(name: str, stop, full_refresh: bool = False) -> dict:
    """The run object of a sync a stop request kept from starting: `cancelled`, never recorded
    (no run id, no lock taken, nothing planned or sent); the next command runs it."""
    from . import __version__
    from .report import run_object

    return run_object(sync=name, status="cancelled", full_refresh=full_refresh,
                      error=f"not started: stopped by {stop.signal_name} before this sync's turn",
                      hint="nothing was planned or sent for it; the next `dinsync sync` runs it",
                      tool_version=__version__)


def sync_exit_code(results: list[tuple[dict, int]], stop=None) -> int:
    """The exit code of `run_syncs`'s results: the worst one, or the signal's when a stop was
    requested, even one that came before any run started (a stopped command must not exit 0 as if
    everything had run)."""
    from .report import worst_exit_code

    codes = [code for _, code in results]
    if stop is not None and stop.requested:
        codes.append(stop.exit_code)
    return worst_exit_code(codes)


def logged_run(project, wh, name: str, run_id: str | None, stop=None) -> dict | None:
    """The run log's row of `run_id` (None when the run was never recorded). A `stop` (the run's)
    cancels the read while it waits for another transaction's lock on `runs` (an ACCESS EXCLUSIVE
    one: a stopped run's report waited for the lock_timeout there, past the grace period)."""
    from .engine.stop import interrupting
    from .state import StateStore

    try:
        with interrupting(stop, wh.interrupt_lock_waits) if stop is not None else contextlib.nullcontext():
            rows = StateStore(wh, project.state_schema).last_runs(sync=name, limit=1)
    except Exception:  # the warehouse failed (or the stop cut the read short): the run object is built without its row
        return None
    return rows[0] if rows and rows[0].get("run_id") == run_id else None


# --- plan, status ---------------------------------------------------------------------------------

def plan_sync(project, wh, name: str, *, full_refresh: bool = False, samples: int = 3) -> dict:
    """`dinsync plan` of one sync: counts, changed rows per field, duplicated keys, sample rows."""
    from .engine import SyncRun
    from .engine.preview import mapped_samples
    from .ops.health import check_transport_options
    from .engine.run import memory_note
    from .report import shown_key

    run = SyncRun(project, name, wh, full_refresh=full_refresh)
    try:
        stats = run.plan()
        notes = [n for n in (paused_note(project, wh, name), memory_note(wh)) if n]
        if samples and (stats.added or stats.changed):  # (a preview: the health check's short retries)
            notes += [n for n in (run.learn_kinds(check_transport_options(run.dest_cfg)),) if n]
        sampled = {op: mapped_samples(run, op, samples) for op in ("added", "changed", "removed")}
        for row in (r for rows in sampled.values() for r in rows):  # a 1 MB key: not a 1 MB line
            row["key"] = shown_key(row["key"])
        return {
            "sync": name, **asdict(stats), "parked": run.parked,
            "notes": run.notes + notes,
            "field_changes": run.planner.field_change_counts(),
            "duplicates": [{"key": shown_key(k), "rows": n} for k, n in run.planner.duplicates_sample(10)]
            if stats.duplicate_keys else [],
            "samples": sampled,
        }
    finally:
        run.planner.release()


def plan_syncs(project, wh, names: list[str], *, full_refresh: bool = False, samples: int = 3,
               on_exception: Callable[[BaseException], None] | None = None) -> tuple[list[dict], list[dict], int]:
    """`dinsync plan` (and the API's `plan`) of the selected syncs: each is planned whatever the others
    did, as `sync` runs them. (plans, errors: {"sync", "error", "hint", "exit_code"[, "issues"]} of
    those that could not be planned, the worst exit code); one sync alone raises its error."""
    from .report import worst_exit_code

    plans, failed = [], []
    for name in names:
        try:
            plans.append(plan_sync(project, wh, name, full_refresh=full_refresh, samples=samples))
        except DinsyncError as exc:
            if len(names) == 1:
                raise
            if on_exception is not None:
                on_exception(exc)
            failed.append((name, exc))
    errors = [{"sync": name, "error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code,
               **({"issues": [i.as_dict() for i in exc.issues]} if isinstance(exc, ConfigError) else {})}
              for name, exc in failed]
    return plans, errors, worst_exit_code(exc.exit_code for _, exc in failed)


def paused_note(project, wh, name: str) -> str | None:
    """A paused sync's plan says what the next `dinsync sync` does instead of sending its rows
    (the plan's counts would otherwise read as what it sends)."""
    from .state import StateStore
    from .state.syncstate import SyncStates

    state = SyncStates(StateStore(wh, project.state_schema)).get(name)
    if not state.paused:
        return None
    if state.auto_paused:
        return (f"sync {name} is paused by itself ({state.culprit}: {state.reason}): the next sync checks that "
                "cause first and sends nothing unless it passes (or --force)")
    return (f"sync {name} is paused (by hand: {state.reason or 'no reason given'}): the next sync sends nothing "
            f"(exit 6) unless run with --force or resumed (`dinsync resume {name}`)")


def status_data(project, wh, names: list[str], limit: int = 5) -> dict:
    """`dinsync status --json`: {"syncs": each of `names`' state (`dinsync.ops.status`), "runs":
    the last `limit` runs of each, newest first per sync, as run objects}."""
    from .ops.status import sync_statuses
    from .report import run_from_log
    from .state import StateStore

    chosen = set(names)
    store = StateStore(wh, project.state_schema)
    store.migrate()
    return {"syncs": sync_statuses(project, store, names),
            "runs": [run_from_log(r) for r in store.last_runs(limit=limit) if r["sync"] in chosen]}
