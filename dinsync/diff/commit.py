"""Commits of a plan: what the destination acknowledged or rejected, recorded in the snapshot.

Every commit method is idempotent, takes any iterable of keys (an Arrow array or a list of
strings), ignores keys that are not added/changed rows of the current plan, and may run in another
thread while the plan is streamed (calls are serialised by the planner's lock).

Cost proportional to the keys committed, not to the plan or the snapshot:
- with a row position (Capabilities.row_position), the planner remembers the position of every
  row it streamed and has not committed yet (`PositionIndex`, 16 bytes a row, by key hash); a
  commit reads the plan at those positions only (range scans) and copies the rows into the
  snapshot. Keys it does not know (not streamed by this planner, committed before) are looked
  for in the whole plan.
- snapshot rows are looked for (deleted, updated) only for keys the snapshot may hold: `_prior`
  (it held them when the plan was built) or committed earlier in this run (a bitmap of committed
  positions here; the plan's `_done` elsewhere). The commits of a first sync only insert.
"""
from __future__ import annotations

import threading
from typing import Any


def _keys_array(keys: Any):
    """The keys as an Arrow string array without NULLs (duplicates are removed later)."""
    import pyarrow as pa

    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    arr = keys if isinstance(keys, pa.Array) else pa.array(list(keys), type=pa.string())
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.type not in (pa.string(), pa.large_string()):
        arr = arr.cast(pa.string())
    return arr.drop_null()


class PositionIndex:
    """Positions of the plan rows streamed and not committed yet, by a hash of their key (Polars),
    one part per streamed batch. A part leaves the index once all its rows were taken; rows of a
    part still in the index may be taken again (a key committed twice), which is harmless: the
    commit's SQL checks every position against the key."""

    SLICE = 262_144  # keys looked up at once

    def __init__(self):
        self._lock = threading.Lock()
        self._parts: list = []  # DataFrames h, rn, part
        self._left: dict[int, int] = {}  # part id -> rows not taken yet
        self._next = 0

    def clear(self) -> None:
        with self._lock:
            self._parts, self._left = [], {}

    @staticmethod
    def hash(keys):
        """64-bit hashes of Arrow string keys (Polars' hash: stable within a process)."""
        import polars as pl

        return pl.from_arrow(keys).hash()

    def add(self, keys, positions) -> None:
        import polars as pl

        with self._lock:
            part_id = self._next
            self._next += 1
        part = pl.DataFrame({"h": self.hash(keys), "rn": pl.from_arrow(positions).cast(pl.Int64),
                             "part": pl.repeat(part_id, len(keys), dtype=pl.UInt32, eager=True)})
        with self._lock:
            self._parts.append(part)
            self._left[part_id] = part.height

    def take(self, keys):
        """(the number of distinct keys, an Arrow table (_key, _rn) of the keys with the position
        of each one's row when known, NULL if not). Only hashes and positions go through Polars:
        the keys themselves stay the caller's Arrow array."""
        import polars as pl
        import pyarrow as pa
        import pyarrow.compute as pc

        with self._lock:
            found = None
            if self._parts:
                pending = pl.concat(self._parts, rechunk=False) if len(self._parts) > 1 else self._parts[0]
                self._parts = [pending]
                pieces = []
                for start in range(0, len(keys), self.SLICE):  # bounded transient memory
                    ack = pl.DataFrame({"h": self.hash(keys.slice(start, self.SLICE))})
                    piece = ack.join(pending, on="h", how="left", maintain_order="left")
                    # rows taken per part (a key given twice counts twice: its part may leave
                    # early, and a later commit of a key of that part looks it up by itself)
                    for part_id, n in piece.get_column("part").drop_nulls().value_counts().iter_rows():
                        self._left[part_id] -= n
                    pieces.append(piece.select("rn"))
                found = pl.concat(pieces) if pieces else pl.DataFrame({"rn": []}, schema={"rn": pl.Int64})
                done = [p for p, left in self._left.items() if left <= 0]
                if done:
                    for p in done:
                        del self._left[p]
                    self._parts = [pending.filter(~pl.col("part").is_in(done))]
        if found is not None and found.height == len(keys):
            rn = found.get_column("rn")
            if not (rn.drop_nulls().sort().diff() == 0).any():
                # distinct positions: keys found are distinct (a key given twice shows twice the
                # same position); keys not found (NULL) are looked up by themselves
                distinct = len(keys) if rn.null_count() == 0 else pc.count_distinct(keys).as_py()
                return distinct, pa.table({"_key": keys, "_rn": rn.to_arrow()})
        # rare: keys given twice, hash collisions: look every key up by itself
        distinct = pc.count_distinct(keys).as_py()
        return distinct, pa.table({"_key": keys, "_rn": pa.nulls(len(keys), pa.int64())})


class CommitMixin:
    """The commit side of `Planner` (see planner.py for the attributes used here)."""

    def commit_acknowledged(self, keys: Any) -> int:
        """Record acknowledged added/changed keys in the snapshot, in one transaction: the hashes of
        the values the plan sent, its fingerprint, no parking. Returns how many plan rows that was."""
        arr = _keys_array(keys)
        if len(arr) == 0:
            return 0
        with self._lock:
            try:
                n = self._collect(arr)
                if n["acknowledged"]:
                    if self._committed_before():  # some key again: all snapshot rows may exist
                        self._execute("acked_replace_all")
                        n = self._row("ack_count")
                    bounds = self._bounds(n)
                    with self.warehouse.transaction():
                        if n["replace"]:
                            self._execute("commit_delete", **bounds)
                        self._execute("commit_insert", **bounds)
                    self._mark_done()
            finally:
                self._drop("ack", "acked")
            return n["acknowledged"]

    def commit_rejected(self, keys: Any) -> int:
        """Park added/changed keys rejected for their content: the snapshot records the plan's
        fingerprint as parked (what was delivered, if anything, is kept), so the row is not planned
        again until its values change. Not for transient failures (they are retried next run).
        Returns how many plan rows were parked."""
        arr = _keys_array(keys)
        if len(arr) == 0:
            return 0
        with self._lock:
            try:
                n = self._collect(arr)
                if n["acknowledged"]:
                    if self._committed_before():
                        self._execute("acked_replace_all")
                        n = self._row("ack_count")
                    bounds = self._bounds(n)
                    with self.warehouse.transaction():
                        if n["replace"]:
                            self._execute("park_update", **bounds)
                        if n["acknowledged"] > n["replace"]:
                            self._execute("park_insert", **bounds)
                    self._mark_done()
            finally:
                self._drop("ack", "acked")
            return n["acknowledged"]

    def _collect(self, arr) -> dict[str, int]:
        """Write the keys (with their known positions), collect their plan rows into `acked`."""
        import pyarrow as pa

        schema = self.scratch_database or self.spec.state_schema
        self._drop("acked")
        if not self.row_position:
            self.warehouse.write_arrow(schema, self.ack_table, pa.table({"_key": arr}), mode="replace")
            self._execute("acked")
            return self._row("ack_count")
        distinct, ack = self._positions.take(arr)
        self.warehouse.write_arrow(schema, self.ack_table, ack, mode="replace")
        known = ack.column("_rn").drop_null()
        if len(known):
            import pyarrow.compute as pc

            bounds = pc.min_max(known)
            self._execute("acked", lo=bounds["min"].as_py(), hi=bounds["max"].as_py())
        else:
            self._execute("acked", lo=0, hi=-1)  # creates the (empty) table
        n = self._row("ack_count")
        if n["acknowledged"] < distinct:
            self._execute("acked_rest")
            n = self._row("ack_count")
        return n

    @staticmethod
    def _bounds(n: dict[str, int]) -> dict[str, int]:
        return {"lo": n["lo"], "hi": n["hi"]} if "lo" in n else {}

    def _committed_before(self) -> bool:
        """Whether some plan row of this commit was committed earlier in this run (its snapshot
        row must then be replaced). With a row position: from the bitmap of committed positions;
        otherwise `_done` is part of `_replace` already."""
        if not self.row_position:
            return False
        import polars as pl

        table = self.warehouse.query(self.render("acked_positions"))
        rn = pl.Series("rn", table.column(0).combine_chunks(), dtype=pl.UInt64)
        self._acked_rn = rn
        top = int(rn.max() or 0) + 1
        with self._done_lock:
            if self._done is None:
                self._done = pl.Series("done", [], dtype=pl.Boolean)
            if len(self._done) < top:  # grow geometrically
                self._done = self._done.extend_constant(False, max(2 * top, 1024) - len(self._done))
            return bool(self._done.gather(rn).any())

    def _mark_done(self) -> None:
        if not self.row_position:
            self._execute("mark_done")
            return
        with self._done_lock:
            self._done.scatter(self._acked_rn, True)

    def commit_removed(self) -> int:
        """Delete the plan's removed keys (and parked keys that left the segment) from the
        snapshot; returns how many delivered keys left it."""
        with self._lock:
            if self._leaving == 0:
                return 0  # nothing left the segment: no statement at all
            with self.warehouse.transaction():
                n = self._scalar("removed_count")
                self._execute("commit_removed")
            self._leaving = 0
            return n

    def commit_full_refresh_cleanup(self) -> int:
        """After a successful full-refresh run: delete snapshot rows whose key left the segment."""
        with self._lock:
            self._require_full_refresh_plan()
            with self.warehouse.transaction():
                n = self._scalar("cleanup_count")
                if n:
                    self._execute("commit_full_refresh_cleanup")
                return n
