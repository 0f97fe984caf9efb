"""Commits of a plan: what the destination acknowledged or rejected, recorded in the snapshot.

Every commit method is idempotent, takes any iterable of keys (an Arrow array or a list of
strings), ignores keys that are not added/changed rows of the current plan, and may run in another
thread while the plan is streamed (calls are serialised by the planner's lock).

Cost: a commit looks up its keys among the plan rows streamed recently (a range of positions,
when the warehouse has a row-position column), then in the rest of the plan only for keys not
found there; snapshot rows are looked for only for keys the snapshot may hold (`_prior`, or
committed earlier in this run: tracked by position in a bitmap here, else in the plan's `_done`).
So the commits of a first sync cost what they insert.
"""
from __future__ import annotations

from typing import Any


def _keys_array(keys: Any):
    import pyarrow as pa
    import pyarrow.compute as pc

    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    arr = keys if isinstance(keys, pa.Array) else pa.array(list(keys), type=pa.string())
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.type != pa.string():
        arr = arr.cast(pa.string())
    return pc.unique(arr.drop_null())


class CommitMixin:
    """The commit side of `Planner` (see planner.py for the attributes used here)."""

    def commit_acknowledged(self, keys: Any) -> int:
        """Record acknowledged added/changed keys in the snapshot, in one transaction: the hashes of
        the values the plan sent, its fingerprint, no parking. Returns how many plan rows that was."""
        arr = _keys_array(keys)
        if len(arr) == 0:
            return 0
        with self._lock:
            self._load_acked(arr)
            try:
                n = self._ack_counts
                if n["acknowledged"]:
                    again = self._committed_before()
                    with self.warehouse.transaction():
                        if again:
                            self._execute("commit_delete_all")
                        elif n["replace"]:
                            self._execute("commit_delete")
                        self._execute("commit_insert")
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
            self._load_acked(arr)
            try:
                n = self._ack_counts
                if n["acknowledged"]:
                    if self._committed_before():
                        self._execute("acked_replace_all")
                        n = self._ack_counts = self._row("ack_count")
                    with self.warehouse.transaction():
                        if n["replace"]:
                            self._execute("park_update")
                        if n["acknowledged"] > n["replace"]:
                            self._execute("park_insert")
                    self._mark_done()
            finally:
                self._drop("ack", "acked")
            return n["acknowledged"]

    def _load_acked(self, arr) -> None:
        """Write the keys, then collect their plan rows into the `acked` scratch table."""
        import pyarrow as pa

        schema = self.scratch_database or self.spec.state_schema
        self.warehouse.write_arrow(schema, self.ack_table, pa.table({"_key": arr}), mode="replace")
        self._drop("acked")
        window = self._window_bounds() if self.row_position else None
        if window is None:
            self._execute("acked")
        else:
            lo, hi = window
            self._execute("acked_window", lo=lo, hi=hi)
            if self._row("ack_count")["acknowledged"] < len(arr):
                self._execute("acked_rest", lo=lo, hi=hi)
        self._ack_counts = self._row("ack_count")

    def _committed_before(self) -> bool:
        """Whether some plan row of this commit was committed earlier in this run (its snapshot
        row must then be replaced). Warehouses with a row position: from the bitmap of committed
        positions; others: `_done` is part of `_replace` already."""
        if not self.row_position:
            return False
        import polars as pl

        table = self.warehouse.query(self.render("acked_positions"))
        rn = pl.Series("rn", table.column(0).combine_chunks(), dtype=pl.UInt64)
        self._acked_rn = rn
        top = int(rn.max() or 0) + 1
        with self._window_lock:
            if self._done is None:
                self._done = pl.Series("done", [], dtype=pl.Boolean)
            if len(self._done) < top:  # grow geometrically
                self._done = self._done.extend_constant(False, max(2 * top, 1024) - len(self._done))
            return bool(self._done.gather(rn).any())

    def _mark_done(self) -> None:
        if not self.row_position:
            self._execute("mark_done")
            return
        with self._window_lock:
            self._done.scatter(self._acked_rn, True)

    def commit_removed(self) -> int:
        """Delete the plan's removed keys (and parked keys that left the segment) from the
        snapshot; returns how many delivered keys left it."""
        with self._lock, self.warehouse.transaction():
            n = self._scalar("removed_count")
            self._execute("commit_removed")
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
