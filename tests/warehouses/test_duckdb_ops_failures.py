"""DuckDB's files next to the database (`<file>.tmp`, where a query spills what does not fit in
its memory): a failure to write them says which file and what to do, not "could not be reached"."""
from __future__ import annotations

import duckdb
import pytest

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
