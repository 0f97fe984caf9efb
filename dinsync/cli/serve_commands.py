"""`serve` (the selected syncs on their schedules) and `sandbox` (a platform's sandbox on 127.0.0.1)."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from .. import terminal
from ..errors import ConfigError, ConfigIssue, ExitCode, LockBusyError
from ..terminal import err, note
from .shared import (MAX_RECHECK_MINUTES, ExcludeOpt, JsonOpt, NamesArg, ProjectDirOpt, SelectOpt, app,
                     connect_existing, handled, in_project, load_chosen, refuse_project_options, state, use_options)
from .sync_commands import run_sync


def make_notifier(project, stop=None):
    from ..ops.notify import Notifier

    return Notifier(project.notifications, project=project.root.name, log=note, stop=stop)


@app.command()
def serve(names: Optional[list[str]] = NamesArg,
          select: Optional[list[str]] = SelectOpt,
          exclude: Optional[list[str]] = ExcludeOpt,
          parallel: int = typer.Option(1, min=1, max=64, metavar="N", help="Syncs running at once."),
          recheck_minutes: float = typer.Option(5.0, min=0.01, max=MAX_RECHECK_MINUTES, metavar="M",
                                                help="How often paused syncs are checked again."),
          project_dir: Optional[Path] = ProjectDirOpt, json_output: bool = JsonOpt) -> None:
    """Run the selected syncs on their schedules until SIGTERM / SIGINT / SIGHUP (one log line per run).

    A signal stops gracefully: no new run starts, runs in flight stop as `dinsync sync` does
    (committed, recorded `cancelled`), then the service exits 0. A second signal exits at once."""
    use_options(project_dir, json_output)
    from ..engine import StopToken, stop_on_signals

    stop = StopToken()
    service = None

    def on_signal(name: str) -> None:
        err().print(f"{name}: stopping (no new run starts; runs in flight stop gracefully)",
                    markup=False, highlight=False)
        if service is not None:
            service.wake()

    with handled(), in_project(), stop_on_signals(stop, on_signal, hangup=True):
        from ..ops.serve import Service, format_line
        from ..progress import line_interval

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
        terminal.keep_going_on_broken_pipe()  # a note to a closed stderr must not end a run

        def emit_event(event: dict) -> None:
            if state.json:
                terminal.write_json(terminal.json_line(event) + "\n")
            else:
                terminal.write_line(format_line(event))  # (not rich: see write_line)

        service = Service(project, scheduled, connect=lambda: connect_existing(project.warehouse, project.root),
                          run_one=lambda wh, name, errors: run_sync(project, wh, name, False, stop=stop, errors=errors,
                                                                    refresh_dbt=True),
                          notifier=make_notifier(project, stop), emit=emit_event, stop=stop, parallel=parallel,
                          recheck_seconds=recheck_minutes * 60.0)
        service.serve()
    raise typer.Exit(ExitCode.OK)


SANDBOX_KEY = "sandbox-key"  # the key `dinsync sandbox` accepts without --api-key or $DINSYNC_SANDBOX_API_KEY


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def sandbox(ctx: typer.Context) -> None:
    """Serve a platform's sandbox on 127.0.0.1 for manual tries (Ctrl-C to stop).

    `dinsync sandbox [iterable|attio|attentive|splio] [OPTIONS]` (default: iterable), e.g.
    `dinsync sandbox attio --port 8766 --no-limits`; `dinsync sandbox --help` lists the platforms,
    `dinsync sandbox attio --help` a platform's options. The accepted API key is `--api-key`, else DINSYNC_SANDBOX_API_KEY, else
    `sandbox-key`."""
    from ..sandbox.__main__ import main as sandbox_main

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
