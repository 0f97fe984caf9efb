"""NumPy is not a dependency of dinsync (a plain `pip install .` has none); the test install has it
(fakesnow's pandas), so a use of it would pass every other test. A sync runs here with NumPy made
unimportable (a `sitecustomize` in front of the path), through a DuckDB plan stream, the mapping
and the commits."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.conftest import TEST_KEY


def test_a_sync_runs_where_numpy_is_not_installed(project, tmp_path):
    project.write()
    project.seed(300)
    blocker = tmp_path / "no_numpy"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text("import sys\nsys.modules['numpy'] = None  # import numpy: ImportError\n")
    path = os.pathsep.join([str(blocker), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = dict(os.environ, ITERABLE_TEST_KEY=TEST_KEY, PYTHONPATH=path, DINSYNC_CHECKPOINT_ROWS="100")
    check = subprocess.run([sys.executable, "-c", "import numpy"], env=env, capture_output=True, text=True)
    assert check.returncode != 0 and "numpy" in check.stderr  # the blocker works
    done = subprocess.run([sys.executable, "-m", "dinsync.cli", "--project-dir", str(project.root), "--json", "sync"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    [run] = json.loads(done.stdout)["runs"]
    assert (run["status"], run["acknowledged"]) == ("success", 300)
    assert len(project.snapshot_keys()) == 300
