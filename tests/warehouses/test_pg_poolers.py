"""PostgreSQL reached through a connection pooler (PgBouncer), whose handling of the startup
`options` (where dinsync's session settings travel) and of a session's state between transactions
(transaction pooling) differs from a direct connection. The pooler is emulated by
tests/warehouses/startup_proxy.py (refusing or dropping `options`) and by the server itself (a
session's prepared statements are what transaction pooling loses): no pooler need be installed."""
from __future__ import annotations


from dinsync.warehouses import connect
from tests.warehouses.support import PG_DSN, require_postgres


def test_no_statement_is_left_prepared_on_the_session():
    """psycopg prepares a statement run five times (a lock's refresh, a checkpoint's update) as a
    named statement of the server session; a pooler in transaction mode (PgBouncer before 1.21,
    or without max_prepared_statements) runs the next transaction on another server session, where
    it does not exist: the sync failed with 'prepared statement "_pg3_0" does not exist'."""
    require_postgres()
    wh = connect("postgres", dsn=PG_DSN)
    try:
        for _ in range(8):
            wh.execute("SELECT 1 WHERE :x = 1", {"x": 1})
            wh.rows("SELECT :x AS x", {"x": 1})
        assert wh.scalar("SELECT COUNT(*) FROM pg_prepared_statements") == 0
    finally:
        wh.close()
