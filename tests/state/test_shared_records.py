"""The `wrote:` records in `meta`, shared by the syncs writing the same records (same destination,
service and matching field), written by two syncs at once: `dinsync serve --parallel` starts the
first runs of two such syncs at the same slot (one process, one connection per run)."""
from __future__ import annotations

import threading
from types import SimpleNamespace

import orjson
import pytest

from dinsync.engine.records import SyncRecords
from dinsync.state import StateStore
from tests.warehouses.support import WarehouseUnderTest


@pytest.fixture(params=["duckdb", "postgres"])
def target(request, tmp_path):
    t = WarehouseUnderTest(request.param, tmp_path)
    StateStore(t.wh, t.state_schema).migrate()
    yield t
    t.close()


def records(target, wh, name: str) -> SyncRecords:
    """Sync `name` mapping `plan` to Iterable's users by email, on its own connection `wh`."""
    cfg = SimpleNamespace(name=name, destination="iterable", service="users", match_field="email",
                          fields=[SimpleNamespace(field="plan")])
    recs = SyncRecords(StateStore(wh, target.state_schema), None, cfg, SimpleNamespace(type="iterable"))
    recs.moved_from()
    return recs


def test_two_syncs_recording_a_shared_field_at_once_both_keep_their_record(target):
    """`free_users` records its write of `plan` while `paid_users` is between reading the record and
    replacing it: before, paid_users' row replaced free_users' (free_users' record lost; at the
    same instant on two connections, DuckDB failed the run: Duplicate key "key: wrote:..."
    violates primary key constraint)."""
    paid, free = records(target, target.wh, "paid_users"), records(target, target.open(), "free_users")
    read = paid.state.meta_values
    other = threading.Thread(target=free.record_writes, args=(["plan"],))

    def read_then_let_the_other_write(*keys):
        values = read(*keys)
        other.start()
        other.join(1.0)  # it waits for paid_users' write, or (before) wrote in between
        return values

    paid.state.meta_values = read_then_let_the_other_write
    paid.record_writes(["plan"])
    other.join(30)
    assert not other.is_alive()
    value = StateStore(target.wh, target.state_schema).meta_values("wrote:iterable (iterable users) by email:plan")
    writers = orjson.loads(value["wrote:iterable (iterable users) by email:plan"])
    assert sorted(writers) == ["free_users", "paid_users"], writers


def test_a_shared_record_another_process_inserts_at_the_same_instant_is_read_and_kept(tmp_path):
    """Two `dinsync sync` processes (two syncs of the same records, first runs at one instant) on
    PostgreSQL: the second insert of the `wrote:` key waits for the first's transaction, then
    failed the run on the key's uniqueness ("duplicate key value violates unique constraint"). It is
    now read again and the record written with both writers."""
    import time

    t = WarehouseUnderTest("postgres", tmp_path)
    try:
        StateStore(t.wh, t.state_schema).migrate()
        key = "wrote:iterable (iterable users) by email:plan"
        other, watcher = t.open(), t.open()  # the other process's session, and one to watch the wait
        free = '{"free_users":{"first":1.0,"last":1.0}}'
        paid = records(t, t.wh, "paid_users")
        failures: list[BaseException] = []

        def record() -> None:
            try:
                paid.record_writes(["plan"])
            except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
                failures.append(exc)

        writer = threading.Thread(target=record)
        with other.transaction():
            other.execute(f'INSERT INTO "{t.state_schema}".meta (key, value) VALUES (:k, :v)', {"k": key, "v": free})
            writer.start()
            deadline = time.monotonic() + 30
            while not watcher.scalar("SELECT COUNT(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                                     "AND query LIKE '%meta%'"):  # paid_users' insert waits for this one
                assert writer.is_alive() and time.monotonic() < deadline, failures
                time.sleep(0.01)
        writer.join(30)
        assert failures == [] and not writer.is_alive(), failures
        writers = orjson.loads(StateStore(t.wh, t.state_schema).meta_values(key)[key])
        assert sorted(writers) == ["free_users", "paid_users"], writers
    finally:
        t.close()
