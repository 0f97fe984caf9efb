"""sqlglot imported for the first time by two threads at once: a model with a `/*` comment read
while another thread renders SQL (`serve`, the Python API in an orchestrator's threads). Each by
its own import route, they deadlocked on Python's import locks and one failed with
`_DeadlockError` (15 runs of 15 before `dinsync.lazy_imports`). A fresh interpreter per attempt:
the race is in the first import."""
from __future__ import annotations

import subprocess
import sys

DRIVER = """
import threading
from dinsync.config.loader import _Loader
from dinsync.diff import render

errors = []
start = threading.Barrier(2)

def read_model():
    start.wait()
    try:
        issues = []
        sql, _ = _Loader._model_sql("select 1 /* a comment */ ;", "models/m.sql", issues)
        assert sql == "select 1" and not issues, (sql, issues)
    except BaseException as exc:
        errors.append(f"model: {exc!r}")

def render_sql():
    start.wait()
    try:
        assert render.check_model_sql("select 1", "postgres") == "select 1"
        assert render.sql_type("UBIGINT", "duckdb") == "UBIGINT"
    except BaseException as exc:
        errors.append(f"render: {exc!r}")

threads = [threading.Thread(target=read_model), threading.Thread(target=render_sql)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(errors or "ok")
"""


def test_first_import_from_two_threads_at_once():
    for _ in range(3):
        done = subprocess.run([sys.executable, "-c", DRIVER], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "ok"
