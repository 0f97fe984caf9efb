"""What a long-lived process (`dinsync serve`, the Python API) keeps from one PostgreSQL or Redshift
connection to the next: a run and a check open their own and close it. Each connection defined its
value loaders anew (days beyond the calendar, '24:00:00'), and psycopg caches every loader class it
is given for good (`AdaptersMap._optimised`): four classes and ~130 objects more a connection, for
ever (a `serve` of a sync every minute: 1,440 connections a day)."""
from __future__ import annotations

import gc

import pytest
from psycopg.adapt import Loader

from tests.warehouses.support import WarehouseUnderTest


def _our_loader_classes() -> int:
    gc.collect()
    return sum(1 for o in gc.get_objects() if isinstance(o, type) and issubclass(o, Loader)
               and o.__module__ == "dinsync.warehouses.pg_values")


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_connections_opened_and_closed_leave_no_loader_classes_behind(kind, tmp_path):
    target = WarehouseUnderTest(kind, tmp_path)
    try:
        sql = "SELECT DATE '2024-01-02' AS d, TIMESTAMP '2024-01-02 03:04:05' AS ts, TIME '24:00:00' AS t"
        target.open().rows(sql)  # (the first connection defines what every one uses)
        before = _our_loader_classes()
        for _ in range(10):
            wh = target.open()
            assert wh.rows(sql)[0]["d"].isoformat() == "2024-01-02"
            wh.close()
        assert _our_loader_classes() == before
    finally:
        target.close()


# A session ended by the server while idle (a DBA's reaper of idle sessions, a failover,
# idle_session_timeout): psycopg learns it from the next statement only, which failed ("consuming
# input failed: terminating connection due to administrator command"). A run that had sent every
# row then failed writing its end (the state's transaction); the commit thread's idle session
# ended stopped a run partway.

def _end_backend(pid: int) -> None:
    import time

    import psycopg

    from tests.warehouses.support import PG_DSN

    with psycopg.connect(PG_DSN, autocommit=True) as conn:
        assert conn.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone()[0]
        deadline = time.monotonic() + 30
        while conn.execute("SELECT 1 FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone():
            assert time.monotonic() < deadline, "the terminated backend never ended"
            time.sleep(0.02)


def _backend_pid(wh) -> int:
    return wh.scalar("SELECT pg_backend_pid()")


def _open(kind: str):
    from dinsync.warehouses import connect
    from tests.warehouses.support import PG_DSN, require_postgres

    require_postgres()
    return connect(kind, dsn=PG_DSN)


@pytest.mark.parametrize("kind", ["postgres", "redshift"])
def test_a_session_ended_while_idle_is_opened_again_for_the_next_statement(kind):
    import threading

    wh = _open(kind)
    try:
        _end_backend(_backend_pid(wh))
        assert wh.scalar("SELECT 2") == 2  # a statement outside a transaction
        _end_backend(_backend_pid(wh))
        with wh.transaction():  # a transaction (the run's end): its BEGIN on a new session
            assert wh.scalar("SELECT 3") == 3
        # another thread's session (the commit thread's), ended while idle
        pids: list[int] = []
        answers: list[int] = []
        ready, go = threading.Event(), threading.Event()

        def commit_thread():
            pids.append(_backend_pid(wh))
            ready.set()
            go.wait(30)
            answers.append(wh.scalar("SELECT 4"))

        thread = threading.Thread(target=commit_thread)
        thread.start()
        ready.wait(30)
        _end_backend(pids[0])
        go.set()
        thread.join(30)
        assert answers == [4]
    finally:
        wh.close()


def test_a_session_ended_inside_a_transaction_that_wrote_fails_it():
    """What the transaction wrote is gone with its session: never run again on a new one."""
    from dinsync.warehouses.errors import WarehouseUnavailable

    wh = _open("postgres")
    try:
        # (a session's temporary table: on a new session, the INSERT would find no table)
        with pytest.raises(WarehouseUnavailable):
            with wh.transaction():
                wh.execute("CREATE TEMPORARY TABLE t (x int)")
                wh.execute("INSERT INTO t VALUES (1)")
                _end_backend(_backend_pid(wh))
                wh.execute("INSERT INTO t VALUES (2)")
        assert wh.scalar("SELECT 5") == 5  # and the next statement, outside it, on a new session
    finally:
        wh.close()
