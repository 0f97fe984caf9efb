"""The `dinsync` process has Polars allocate from one jemalloc arena (its default, one per few
threads, kept ~17 MB more at a 1M-row first sync's peak: see `dinsync.process.use_one_polars_arena`),
unless the user configured Polars' allocator with _RJEM_MALLOC_CONF."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from dinsync.process import POLARS_MALLOC_CONF

# What the command's process had when its command ran: the variable, and whether Polars (which
# reads it once, when it is loaded) had been loaded before `main` set it.
DRIVER = """
import atexit, json, os, sys
from pathlib import Path
out, name = Path(sys.argv[1]), sys.argv[2]
before = "polars" in sys.modules
def record():  # Polars, imported after this point, starts its allocator with what `main` set
    out.write_text(json.dumps({"conf": os.environ.get(name), "polars_before_main": before}))
atexit.register(record)
sys.argv = ["dinsync", "--version"]
from dinsync.cli import main
main()
"""


def _run(tmp_path: Path, **env: str) -> dict:
    out = tmp_path / "seen.json"
    environ = {k: v for k, v in os.environ.items() if k != POLARS_MALLOC_CONF}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(out), POLARS_MALLOC_CONF], capture_output=True,
                          text=True, timeout=60, cwd=tmp_path, env={**environ, **env})
    assert done.returncode == 0, done.stderr
    return json.loads(out.read_text())


def test_the_command_gives_polars_one_arena(tmp_path):
    seen = _run(tmp_path)
    assert seen["conf"] == "narenas:1"
    assert seen["polars_before_main"] is False  # set before Polars' allocator started


def test_a_configuration_chosen_by_the_user_is_kept(tmp_path):
    assert _run(tmp_path, **{POLARS_MALLOC_CONF: "narenas:4,dirty_decay_ms:0"})["conf"] == "narenas:4,dirty_decay_ms:0"


def test_the_polars_runtime_reads_that_variable():
    """The name is jemalloc's for the `_rjem_` prefix that Polars' allocator is built with: the
    variable name is in Polars' runtime library (a renamed variable would silently do nothing)."""
    import polars

    runtimes = [p for p in Path(polars.__file__).parent.parent.glob("_polars_runtime*/*.so")]
    assert runtimes, "no Polars runtime library found"
    assert any(POLARS_MALLOC_CONF.encode() in p.read_bytes() for p in runtimes)
