"""DuckDB's files next to the database (`<file>.tmp`, where a query spills what does not fit in
its memory): a failure to write them says which file and what to do, not "could not be reached"."""
from __future__ import annotations

import duckdb
import pytest

from dinsync.errors import DinsyncError
from dinsync.warehouses import WarehouseError
from dinsync.warehouses.duckdb import DuckDBWarehouse


def test_a_temporary_folder_that_cannot_be_made_is_named_with_what_to_do(tmp_path):
    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    (tmp_path / "w.duckdb.tmp").write_text("")  # a file where DuckDB makes its temporary folder
    w = DuckDBWarehouse(str(path))
    try:
        w.con.execute("SET memory_limit = '16MB'")  # so that the sort spills
        with pytest.raises(WarehouseError) as caught:
            w.query("SELECT max(rn) FROM (SELECT row_number() OVER (ORDER BY s) AS rn FROM "
                    "(SELECT repeat('x', 100) || i::VARCHAR AS s FROM range(400000) AS t(i)))")
    finally:
        w.close()
    assert "w.duckdb.tmp" in caught.value.message
    hint = caught.value.hint or ""
    assert "could not be reached" not in hint and "writable" in hint and "disk" in hint, hint


def test_a_file_cut_short_is_not_a_warehouse_to_try_again_later(tmp_path):
    path = tmp_path / "w.duckdb"
    con = duckdb.connect(str(path))
    con.execute("CREATE TABLE t AS SELECT i, repeat('x', 50) AS s FROM range(200000) AS r(i)")
    con.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])  # a copy that stopped half-way
    with pytest.raises(DinsyncError) as caught:  # on opening it, or on reading the table
        w = DuckDBWarehouse(str(path))
        try:
            w.query("SELECT count(*), max(s) FROM t")
        finally:
            w.close()
    hint = caught.value.hint or ""
    assert "could not be reached" not in hint and "restore it" in hint, (caught.value.message, hint)


@pytest.mark.parametrize("method", ["rows", "query"])
def test_ctrl_c_during_a_query_is_a_keyboard_interrupt_not_an_error(tmp_path, method):
    """DuckDB turns the KeyboardInterrupt that Python's SIGINT handler raises during a statement into
    `RuntimeError: Query interrupted`: Ctrl-C during `dinsync check` (or a Python API call) counting a
    slow model's keys printed "error: unexpected error: RuntimeError: Query interrupted" and exited 1.
    It stays a KeyboardInterrupt (the CLI: "interrupted", exit 130)."""
    import os
    import signal
    import threading

    path = tmp_path / "w.duckdb"
    duckdb.connect(str(path)).close()
    w = DuckDBWarehouse(str(path))
    # one thread: DuckDB then checks for the signal while the statement runs (with more, it may
    # notice it only once the statement has ended: a KeyboardInterrupt too, seconds later)
    w.con.execute("SET threads = 1")
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):  # the statement would take seconds
            getattr(w, method)("SELECT count(*) FROM range(2000000000) AS t(i) WHERE i % 7 = 3")
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
        w.close()
