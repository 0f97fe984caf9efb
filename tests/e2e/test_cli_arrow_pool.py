"""The `dinsync` process allocates Arrow memory with the C library's malloc (its default pool keeps
~30 MB of freed copies at a sync's peak, see `dinsync.process.use_system_arrow_pool`), unless the user
chose a pool with ARROW_DEFAULT_MEMORY_POOL."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

# The pool pyarrow uses once the command has started (read at exit, after `main` ran).
DRIVER = """
import atexit, sys
from pathlib import Path
out = Path(sys.argv[1])
def pool():
    import pyarrow
    out.write_text(pyarrow.default_memory_pool().backend_name)
atexit.register(pool)
sys.argv = ["dinsync", "--version"]
from dinsync.cli import main
main()
"""


def _pool(tmp_path: Path, **env: str) -> str:
    out = tmp_path / "pool"
    environ = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    done = subprocess.run([sys.executable, "-c", DRIVER, str(out)], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path, env={**environ, **env})
    assert done.returncode == 0, done.stderr
    return out.read_text()


def test_the_command_uses_the_system_pool(tmp_path):
    assert _pool(tmp_path) == "system"


def test_a_pool_chosen_by_the_user_is_kept(tmp_path):
    assert _pool(tmp_path, ARROW_DEFAULT_MEMORY_POOL="jemalloc") == "jemalloc"
