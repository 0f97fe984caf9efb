"""How the `dinsync` process starts and leaves: the allocators and threads of the libraries it
loads are set up before any of them is imported (environment variables each library reads once,
each left alone when the user set it), and the process exits without the interpreter's teardown.
The Python API leaves its host process alone: only `dinsync.cli.main` calls these."""
from __future__ import annotations

import contextlib
import os
import sys

from .terminal import RedactingStream


def use_system_arrow_pool() -> None:
    """Arrow allocates with the C library's malloc in the `dinsync` process (unless
    ARROW_DEFAULT_MEMORY_POOL says otherwise): its default pool (mimalloc) keeps what the copies of
    a run's streamed rows freed, ~30 MB of RSS at the peak of a sync that sends (README,
    "Benchmarks"), at the same speed. Read by pyarrow when it first allocates, so set before any
    command imports it; the Python API leaves the host process's allocator alone."""
    os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")


# jemalloc's configuration variable for the allocator inside Polars (its symbols carry the `_rjem_`
# prefix; DuckDB's and Arrow's allocators do not read it).
POLARS_MALLOC_CONF = "_RJEM_MALLOC_CONF"


def use_one_polars_arena() -> None:
    """Polars allocates from a single jemalloc arena in the `dinsync` process (unless
    _RJEM_MALLOC_CONF says otherwise). By default jemalloc gives each of up to 4 x cores arenas its
    own retained pages, and a sync's threads (Polars', the sender's, the commits') spread over them:
    one arena kept the peak RSS of a 1M-row first sync at 388-394 instead of 407-416 MB, as fast
    (six interleaved pairs, benchmarks/HISTORY.md). Read by Polars' allocator when it starts, so
    set before Polars is imported; the Python API leaves the host process's allocator alone."""
    os.environ.setdefault(POLARS_MALLOC_CONF, "narenas:1")


# OpenBLAS's variable for its thread count (the BLAS inside NumPy's wheels).
BLAS_THREADS = "OPENBLAS_NUM_THREADS"


def use_one_blas_thread() -> None:
    """NumPy's OpenBLAS starts no thread of its own in the `dinsync` process (unless
    OPENBLAS_NUM_THREADS says otherwise). pyarrow imports NumPy, whose OpenBLAS starts a thread per
    further core that spins waiting for work: ~85 ms of CPU in a 1M-row, 2%-churn run (5.6% of its
    samples under `perf`), taken from DuckDB's plan on a 2-core machine, for linear algebra that
    dinsync never does. Read when NumPy is loaded, so set before any command imports it; the
    Python API leaves the host process alone."""
    os.environ.setdefault(BLAS_THREADS, "1")


def exit_now(code: int | str | None) -> None:
    """Leave the process once the command is done: flush stdout and stderr, wait for threads,
    run the `atexit` hooks (logging's flush, a profiler's, a wrapper's), then `os._exit`. The
    interpreter's teardown would only free what the process is about to drop anyway (modules,
    Polars and DuckDB objects): 0.1-0.25 s of every command, a fifth of a run with nothing to
    send. Nothing is lost by skipping it: the command closes its warehouse connections itself, and
    a run's state is committed before it returns. `DINSYNC_SLOW_EXIT=1` keeps the normal shutdown
    (e.g. to debug a destructor)."""
    if isinstance(code, str):  # sys.exit("message"): printed, exit status 1
        RedactingStream(sys.stderr).write(code + "\n")
        code = 1
    code = 0 if code is None else int(code)
    if os.environ.get("DINSYNC_SLOW_EXIT"):
        sys.exit(code)
    import atexit
    import threading

    def flush() -> None:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):
                stream.flush()

    flush()
    # What the interpreter's shutdown does first: wait for non-daemon threads (a scheduled run
    # `serve` still finishes) and stop idle thread pools; then the atexit hooks.
    shutdown_threads = getattr(threading, "_shutdown", None)
    if shutdown_threads is not None:
        shutdown_threads()
    atexit._run_exitfuncs()
    flush()  # what the hooks wrote
    os._exit(code)
