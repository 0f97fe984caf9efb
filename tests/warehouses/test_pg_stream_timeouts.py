"""The plan's stream on PostgreSQL lasts as long as sending does (hours at a platform's rate): a
role's statement_timeout and idle_in_transaction_session_timeout, set by a DBA for interactive
sessions, must not end it; and an error the server sends mid-stream is a warehouse error, not the
OSError of Arrow's C stream."""
from __future__ import annotations

import time
import uuid

import psycopg
import pytest

from dinsync.warehouses import WarehouseError, WarehouseUnavailable, connect
from tests.warehouses.support import PG_DSN

ROWS = 200_000


@pytest.fixture
def impatient_role():
    """A role whose sessions time out after 1 s of a statement or of idling in a transaction, and a
    table it may read (names unique to this test: roles are shared by the whole server)."""
    name = f"dinsync_impatient_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_DSN, autocommit=True) as admin:
        admin.execute(f"CREATE ROLE {name} LOGIN")
        admin.execute(f"ALTER ROLE {name} SET statement_timeout = '1s'")
        admin.execute(f"ALTER ROLE {name} SET idle_in_transaction_session_timeout = '1s'")
        admin.execute(f"CREATE SCHEMA {name} AUTHORIZATION {name}")
        admin.execute(f"CREATE TABLE {name}.plan AS SELECT i, md5(i::text) AS t FROM generate_series(1, {ROWS}) AS i")
        admin.execute(f"ALTER TABLE {name}.plan OWNER TO {name}")
    try:
        yield name
    finally:
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {name} CASCADE")
            admin.execute(f"DROP ROLE {name}")


def _as(role: str, path: str):
    dsn = " ".join(p for p in PG_DSN.split() if not p.startswith("user="))
    w = connect("postgres", dsn=f"{dsn} user={role}")
    if path == "cursor":
        w._adbc = None  # the server-side cursor, as without the ADBC driver
    return w


@pytest.mark.parametrize("path", ["adbc", "cursor"])
def test_a_slow_reader_outlasts_the_roles_timeouts(impatient_role, path):
    w = _as(impatient_role, path)
    try:
        with pytest.raises(WarehouseError, match="statement timeout"):  # the role's timeout holds elsewhere
            w.query("SELECT pg_sleep(2)")
        n = 0
        for i, batch in enumerate(w.stream(f"SELECT * FROM {impatient_role}.plan", batch_rows=10_000)):
            n += batch.num_rows
            if i < 2:
                time.sleep(1.5)  # the platform is slow: past both timeouts, twice
        assert n == ROWS
    finally:
        w.close()


def test_the_servers_error_mid_stream_is_a_warehouse_error(impatient_role):
    w = _as(impatient_role, "adbc")
    # 50 x the table (~500 MB), which the server cannot have sent whole before it is stopped: the
    # table alone (~10 MB) sometimes reached the socket's and the driver's buffers before the
    # terminate, and the stream then ended without an error (seen once in CI)
    stream = w.stream(f"SELECT p.* FROM {impatient_role}.plan AS p CROSS JOIN generate_series(1, 50) AS g",
                      batch_rows=1_000)
    try:
        next(stream)
        with psycopg.connect(PG_DSN, autocommit=True) as admin:
            pids = [r[0] for r in admin.execute(
                "SELECT pid FROM pg_stat_activity WHERE usename = %s AND query LIKE 'COPY%%'", (impatient_role,))]
            assert pids
            for pid in pids:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(WarehouseUnavailable) as caught:  # (transient: the next run reads the plan again)
            for _ in stream:
                pass
        assert "while streaming a query" in caught.value.message
    finally:
        stream.close()
        w.close()
