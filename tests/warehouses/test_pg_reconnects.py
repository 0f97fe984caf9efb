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
