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
