"""The `dinsync` console script's entry point. The command's modules (typer, rich) take ~0.1 s to
import, before `dinsync.cli` can handle a Ctrl-C: one in that time ends the command as one during
its run does ("interrupted", exit 130), not with a traceback. Nothing has started yet, so there is
nothing to record."""
from __future__ import annotations

import os
import sys


def main() -> None:
    try:
        from .cli import main as run_command
    except KeyboardInterrupt:
        sys.stderr.write("interrupted\n")
        sys.stderr.flush()
        os._exit(130)
    run_command()
