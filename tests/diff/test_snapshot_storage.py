"""How DuckDB stores a snapshot: its hash columns uncompressed (dialects.HASH_COLUMN_STORAGE), so
that commits skip a compression analysis that never finds anything to compress in random hashes;
what they hold is unchanged."""
from __future__ import annotations

import re

from dinsync.diff import DiffSpec, Planner
from dinsync.warehouses import connect


def test_duckdb_stores_snapshot_hashes_uncompressed_and_reads_them_back(tmp_path):
    w = connect("duckdb", path=str(tmp_path / "w.duckdb"))
    rows = 300_000  # more than two of DuckDB's row groups (122,880 rows)
    w.execute(f"""CREATE TABLE people AS SELECT 'user' || i || '@example.com' AS email, 'n' || (i % 7) AS name,
                  i % 100 AS score FROM range({rows}) AS t(i)""")
    spec = DiffSpec(sync="s", model_sql="SELECT * FROM people", key_column="email", key_normalization="email",
                    fields=[("name", "name"), ("score", "score")])
    p = Planner(w, spec)
    assert p.plan().added == rows
    with w.streaming(replacing=False, rows=rows):
        keys = [batch.column(0) for batch in p.stream_sendable(batch_rows=50_000)]
        assert sum(p.commit_acknowledged(k) for k in keys) == rows
    w.execute("CHECKPOINT")
    storage = w.query("""
        SELECT column_name AS c, list(DISTINCT compression ORDER BY compression) AS how
        FROM pragma_storage_info('dinsync.snap_s') WHERE segment_type <> 'VALIDITY' GROUP BY column_name""")
    how = {r["c"]: r["how"] for r in storage.to_pylist()}
    hashes = ["_kh", "_fp", "_rkh"] + [f.snap_name for f in p.fields]
    assert all(how[c] == ["Uncompressed"] for c in hashes), how
    assert how["_pfp"] != ["Uncompressed"] and how["_synced_at"] != ["Uncompressed"]  # these compress
    # ... because the table says so (DuckDB would also end up there, after analysing every segment)
    ddl = w.query("SELECT sql FROM duckdb_tables() WHERE table_name = 'snap_s'").column(0)[0].as_py()
    told = set(re.findall(r'(\w+) UBIGINT USING COMPRESSION uncompressed', ddl, flags=re.IGNORECASE))
    assert told == set(hashes), ddl
    # what they hold: the key hashes match the keys, and the next plan finds nothing to do
    assert w.query("SELECT count(*) AS n FROM dinsync.snap_s WHERE _kh <> hash(_key)").column(0)[0].as_py() == 0
    again = p.plan()
    assert (again.added, again.changed, again.removed, again.unchanged) == (0, 0, 0, rows)
