"""The `dinsync` command: thin typer commands, one error handler, rich output or --json.

Exit codes: 0 ok · 1 a run failed · 2 usage error · 3 configuration error ·
4 a run finished with warnings (when the sync's `fail_on_warning` is true) · 5 another run holds the lock.
"""
from __future__ import annotations

import contextlib
import fnmatch
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import ConfigError, ConfigIssue, DinsyncError, ExitCode

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Warehouse-native reverse ETL.")
out = Console()
err = Console(stderr=True)
if not out.is_terminal:  # piped or captured: do not squeeze tables into 80 columns
    out = Console(width=200)


class State:
    project_dir: Path = Path(".")
    json: bool = False


state = State()


@app.callback()
def _main(
    project_dir: Path = typer.Option(Path("."), "--project-dir", "-p", help="Folder holding dinsync.yml."),
    json_output: bool = typer.Option(False, "--json", help="Machine-readable output on stdout."),
) -> None:
    state.project_dir = project_dir
    state.json = json_output


def emit(data: Any) -> None:
    out.file.write(json.dumps(data, default=str, indent=2) + "\n")
    out.file.flush()


def fail(exc: DinsyncError) -> None:
    if state.json:
        payload: dict[str, Any] = {"error": exc.message, "hint": exc.hint, "exit_code": exc.exit_code}
        if isinstance(exc, ConfigError):
            payload["issues"] = [i.as_dict() for i in exc.issues]
            payload["error"] = f"{len(exc.issues)} configuration error(s)"
        emit(payload)
    else:
        if isinstance(exc, ConfigError):
            err.print(f"[bold red]{len(exc.issues)} configuration error(s)[/]")
            for issue in exc.issues:
                err.print("  " + issue.format(), markup=False, highlight=False)
        else:
            err.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            if exc.hint:
                err.print(f"[dim]hint: {exc.hint}[/]", highlight=False)
    raise typer.Exit(exc.exit_code)


@contextlib.contextmanager
def handled() -> Iterator[None]:
    try:
        yield
    except DinsyncError as exc:
        if os.environ.get("DINSYNC_DEBUG") and exc.__cause__ is not None:
            err.print_exception()
        fail(exc)
    except (typer.Exit, KeyboardInterrupt):
        raise
    except Exception as exc:  # a bug or an environment problem: one clean line, traceback on demand
        if os.environ.get("DINSYNC_DEBUG"):
            raise
        fail(DinsyncError(f"unexpected error: {type(exc).__name__}: {exc}",
                          "set DINSYNC_DEBUG=1 for a traceback"))


@contextlib.contextmanager
def in_project() -> Iterator[Path]:
    """Run with the project folder as working directory (model SQL may read relative files)."""
    root = state.project_dir.resolve()
    if not (root / "dinsync.yml").is_file():
        fail(ConfigError([ConfigIssue(f"no dinsync.yml in {root}", hint="run `dinsync init` or pass --project-dir")]))
    previous = os.getcwd()
    os.chdir(root)
    try:
        yield root
    finally:
        os.chdir(previous)


def load(check_models: bool = True):
    """Load and fully validate the project; open its warehouse. Raises ConfigError with every issue,
    model columns included (checked in the same pass whenever the warehouse can be opened)."""
    from .config import check_columns, load_project

    def columns_of(wh):
        return lambda model: [c for c, _ in wh.columns(model.sql)]

    try:
        project = load_project(Path("."))
    except ConfigError:
        wh = _warehouse_from_raw_config() if check_models else None
        if wh is None:
            raise
        try:
            load_project(Path("."), columns_of=columns_of(wh))
        finally:
            wh.close()
        raise
    wh = open_warehouse(project)
    if check_models:
        issues = check_columns(project, columns_of(wh))
        if issues:
            wh.close()
            raise ConfigError(issues)
    return project, wh


def _warehouse_from_raw_config():
    """The warehouse of a dinsync.yml that failed validation elsewhere, or None."""
    import yaml

    from .config.models import WAREHOUSE_TYPES

    try:
        raw = yaml.safe_load(Path("dinsync.yml").read_text())["warehouse"]
        return connect_warehouse(WAREHOUSE_TYPES[raw["type"]](**raw), Path(".").resolve())
    except Exception:
        return None


def open_warehouse(project):
    return connect_warehouse(project.warehouse, project.root)


def connect_warehouse(cfg, root: Path):
    """Connect to the warehouse a validated `warehouse:` config describes (paths relative to root)."""
    from .warehouses import connect

    options = cfg.model_dump(exclude={"type"})
    if hasattr(cfg, "resolved_path"):
        options["path"] = cfg.resolved_path(root)
    return connect(cfg.type, **{k: v for k, v in options.items() if v is not None})


def select_syncs(project, select: list[str] | None) -> list[str]:
    names = sorted(n for n, s in project.syncs.items() if s.enabled or select)
    if not select:
        return names
    patterns = [p.strip() for item in select for p in item.split(",") if p.strip()]
    chosen = [n for n in sorted(project.syncs) if any(fnmatch.fnmatchcase(n, p) for p in patterns)]
    if not chosen:
        raise ConfigError([ConfigIssue(f"--select {' '.join(patterns)} matches no sync",
                                       hint=f"syncs: {', '.join(sorted(project.syncs)) or 'none'}")])
    return chosen


SelectOpt = typer.Option(None, "--select", "-s", help="Sync names or glob patterns (repeat or comma-separate).")


@app.command()
def validate() -> None:
    """Check every project file (and model columns in the warehouse); report all errors at once."""
    with handled(), in_project():
        project, wh = load()
        wh.close()
        result = {"ok": True, "syncs": sorted(project.syncs), "models": sorted(project.models),
                  "destinations": sorted(project.destinations)}
        if state.json:
            emit(result)
        else:
            out.print(f"[green]OK[/]: {len(project.syncs)} sync(s), {len(project.models)} model(s), "
                      f"{len(project.destinations)} destination(s)")


@app.command()
def plan(select: Optional[list[str]] = SelectOpt,
         full_refresh: bool = typer.Option(False, "--full-refresh", help="Plan as if nothing had been sent."),
         samples: int = typer.Option(3, help="Sample rows per kind of change.")) -> None:
    """Dry run: what each sync would send. Nothing is sent, nothing is committed."""
    from .engine import SyncRun

    with handled(), in_project():
        project, wh = load()
        report = []
        try:
            for name in select_syncs(project, select):
                run = SyncRun(project, name, wh, full_refresh=full_refresh)
                stats = run.plan()
                entry = {"sync": name, **asdict(stats),
                         "duplicates": run.planner.duplicates_sample(10) if stats.duplicate_keys else [],
                         "samples": {op: run.planner.sample(op, samples) for op in ("added", "changed", "removed")}}
                report.append(entry)
        finally:
            wh.close()
        if state.json:
            emit({"plans": report})
            return
        for entry in report:
            out.print(f"[bold]{entry['sync']}[/]: [green]+{entry['added']} added[/], [yellow]~{entry['changed']} changed"
                      f"[/], [red]-{entry['removed']} removed[/], {entry['unchanged']} unchanged; withheld: "
                      f"{entry['null_keys']} NULL keys, {entry['duplicate_rows']} rows of {entry['duplicate_keys']} "
                      "duplicated keys", highlight=False)
            for op, rows in entry["samples"].items():
                for row in rows:
                    out.print(f"  {op:8} {json.dumps(row, default=str)[:300]}", markup=False, highlight=False)


@app.command()
def sync(select: Optional[list[str]] = SelectOpt,
         full_refresh: bool = typer.Option(False, "--full-refresh", help="Send every row again."),
         retry_rejected: bool = typer.Option(False, "--retry-rejected",
                                             help="Send rows parked as rejected again, even if unchanged.")) -> None:
    """Bring each selected destination up to date with its model."""
    from .engine import StopToken, SyncRun, stop_on_signals

    stop = StopToken()

    def on_signal(name: str) -> None:
        err.print(f"{name}: stopping after the requests in flight (send it again to exit at once)")

    with handled(), in_project(), stop_on_signals(stop, on_signal):
        project, wh = load()
        summaries, exit_code = [], ExitCode.OK
        try:
            for name in select_syncs(project, select):
                if stop.requested:
                    break
                try:
                    with progress_bar(name) as progress:
                        summary = SyncRun(project, name, wh, full_refresh=full_refresh, retry_rejected=retry_rejected,
                                          progress=progress, stop=stop).run()
                except DinsyncError as exc:
                    if len(select_syncs(project, select)) == 1:
                        raise
                    summaries.append({"sync": name, "status": "failed", "error": exc.message})
                    exit_code = max(exit_code, exc.exit_code)
                    continue
                summaries.append(asdict(summary))
                if summary.status == "cancelled":
                    exit_code = stop.exit_code
                elif summary.status == "failed":
                    exit_code = ExitCode.RUN_FAILED
                elif summary.status == "warning" and project.syncs[name].thresholds.fail_on_warning:
                    exit_code = max(exit_code, ExitCode.WARNINGS) if exit_code != ExitCode.RUN_FAILED else exit_code
        finally:
            wh.close()
        if state.json:
            emit({"runs": summaries, "exit_code": exit_code})
        else:
            for s in summaries:
                print_summary(s)
        raise typer.Exit(exit_code)


def print_summary(s: dict) -> None:
    colour = {"success": "green", "warning": "yellow", "failed": "red"}.get(s["status"], "white")
    if "run_id" not in s:
        err.print(f"[bold]{s['sync']}[/]: [red]failed[/] {s.get('error')}", highlight=False)
        return
    out.print(
        f"[bold]{s['sync']}[/] [{colour}]{s['status']}[/] in {s['seconds']:.2f}s: +{s['added']} ~{s['changed']} "
        f"-{s['removed']} | sent {s['sent']}, acknowledged {s['acknowledged']}, rejected {s['rejected']}, "
        f"not found {s['not_found']}, failed {s['failed']} | {s['requests']} requests, {s['throttled']} throttled "
        f"(run {s['run_id']})", highlight=False)
    for w in s.get("warnings") or []:
        out.print(f"  [yellow]warning:[/] {w}", highlight=False)
    if s.get("error"):
        out.print(f"  [red]error:[/] {s['error']}", highlight=False)


@contextlib.contextmanager
def progress_bar(name: str):
    if state.json or not out.is_terminal:
        yield None
        return
    with Progress(TextColumn(f"[bold]{name}[/]"), TextColumn("{task.description}"), BarColumn(),
                  MofNCompleteColumn(), TimeElapsedColumn(), console=err, transient=True) as bar:
        task = bar.add_task("planning", total=None)

        def on_event(event: str, data: dict) -> None:
            if event == "send":
                bar.update(task, description="sending", total=data["total"], completed=0)
            elif event == "sent":
                bar.advance(task, data["rows"])
            elif event == "finish":
                bar.update(task, description="committing")

        yield on_event


@app.command()
def status(select: Optional[list[str]] = SelectOpt,
           limit: int = typer.Option(5, help="Runs per sync.")) -> None:
    """Last runs per sync, from the run log in the warehouse."""
    from .state import StateStore

    with handled(), in_project():
        project, wh = load(check_models=False)
        try:
            store = StateStore(wh, project.state_schema)
            store.migrate()
            names = select_syncs(project, select)
            runs = [r for r in store.last_runs(limit=limit) if r["sync"] in names]
        finally:
            wh.close()
        if state.json:
            emit({"runs": runs})
            return
        table = Table("sync", "started (UTC)", "status", "added", "changed", "removed", "acked", "rejected",
                      "failed", "seconds", "error")
        for r in runs:
            table.add_row(r["sync"], f"{r['started_at']:%Y-%m-%d %H:%M:%S}", r["status"], *(str(r[c] or 0) for c in (
                "added", "changed", "removed", "acknowledged", "rejected", "failed")),
                f"{r['seconds'] or 0:.2f}", (r["error"] or "")[:80])
        out.print(table if runs else "no runs yet")


@app.command()
def init(path: Path = typer.Argument(..., help="Folder to create."),
         force: bool = typer.Option(False, help="Overwrite existing files.")) -> None:
    """Scaffold a project folder with an example model and sync."""
    from .config import scaffold

    with handled():
        written = scaffold(path, force=force)
        if state.json:
            emit({"created": [str(p) for p in written]})
        else:
            for p in written:
                out.print(f"created {p}")
            out.print(f"next: cd {path} && dinsync validate", highlight=False)


@app.command()
def sandbox(port: int = typer.Option(8765, help="Port on 127.0.0.1 (0: any free port)."),
            api_key: str = typer.Option("sandbox-key", envvar="DINSYNC_SANDBOX_API_KEY", help="Accepted API key."),
            no_limits: bool = typer.Option(False, "--no-limits", help="Turn the rate limits off.")) -> None:
    """Serve the platform sandboxes on 127.0.0.1 for manual tries (Ctrl-C to stop)."""
    from .sandbox.runner import serve

    serve("iterable", port=port, api_key=api_key, limits=not no_limits)


@app.command()
def demo(path: Path = typer.Option(Path("dinsync_demo"), help="Folder for the demo project and warehouse."),
         rows: int = typer.Option(10_000, help="Customers in the sample warehouse.")) -> None:
    """Offline demo: sample DuckDB warehouse + Iterable sandbox; sync, change data, sync again."""
    from .demo import run_demo

    with handled():
        report = run_demo(path, rows, say=None if state.json else lambda text: out.print(text, highlight=False))
        if state.json:
            emit(report)


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)


if __name__ == "__main__":
    main()
