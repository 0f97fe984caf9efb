"""Commits of a plan: what the destination acknowledged or rejected, recorded in the snapshot.

Every commit method is idempotent, takes any iterable of keys (an Arrow array or a list of
strings), ignores keys that are not added/changed rows of the current plan, and may run in another
thread while the plan is streamed (calls are serialised by the planner's lock).

Cost proportional to the keys committed, not to the plan or the snapshot:
- with a row position (Capabilities.row_position), the plan's stream carries what a commit
  records for each row (its position, key hash, fingerprint and the hashes of the values sent),
  and the planner keeps that for the rows streamed and not committed yet (`StreamedRows`, ~150
  bytes a row, so bounded by the rows in flight): a commit writes those rows to the snapshot
  without reading the plan again (at 10M rows the plan is mostly spilled to disk, and reading it
  back cost two thirds of the commit). Keys it does not know (not streamed by this planner,
  committed before) are looked for in the whole plan.
- snapshot rows are looked for (deleted, updated) only for keys the snapshot may hold: `_prior`
  (it held them when the plan was built) or committed earlier in this run (a bitmap of committed
  positions with a row position, a Bloom filter of committed keys without: no statement marks the
  plan). The commits of a first sync only insert.
"""
from __future__ import annotations

import contextlib
import threading
from typing import Any, Callable


def _keys_array(keys: Any):
    """The keys as an Arrow string array without NULLs (duplicates are removed later). The keys
    the engine commits (strings, no NULL) never load `pyarrow.compute`: its first use costs ~25 ms,
    at the end of a run's last commit."""
    import pyarrow as pa

    if isinstance(keys, pa.ChunkedArray):
        keys = keys.combine_chunks()
    arr = keys if isinstance(keys, pa.Array) else pa.array(list(keys), type=pa.string())
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    if arr.type not in (pa.string(), pa.large_string()):
        arr = arr.cast(pa.string())
    return arr.drop_null() if arr.null_count else arr


def _series(name: str, arr):
    """An Arrow array as a Polars Series, through a record batch: Polars' own conversion of an
    array imports `pyarrow.compute` (~25 ms, at the end of a run's last commit); a batch's does not."""
    import polars as pl
    import pyarrow as pa

    if isinstance(arr, pa.ChunkedArray):
        arr = arr.combine_chunks()
    return pl.from_arrow(pa.record_batch([arr], names=[name])).to_series()


class StreamedRows:
    """The plan rows streamed and not committed yet, with what a commit records for them (carried
    in the stream: position, key, hashes of the values sent, fingerprint), by a hash of their key
    (Polars), one part per streamed batch. A commit takes its keys' rows from here and writes them
    to the snapshot without reading the plan again. A part leaves once all its rows were taken;
    a key taken twice while its part is still here is found again (harmless: the commit replaces
    the snapshot row it wrote before). Keys not found are looked for in the plan."""

    SLICE = 1 << 20  # keys looked up at once

    def __init__(self):
        self._lock = threading.Lock()  # the parts and counts (held briefly: `add` runs meanwhile)
        self._taking = threading.Lock()  # one `take` at a time
        self._parts: list = []  # DataFrames (one per batch): the carried columns, _h, _part
        self._left: dict[int, int] = {}  # part id -> rows not taken yet
        self._next = 0

    def clear(self) -> None:
        with self._lock:
            self._parts, self._left = [], {}

    @staticmethod
    def hash(keys):
        """64-bit hashes of string keys (Polars' hash: stable within a process)."""
        import polars as pl

        return (keys if isinstance(keys, pl.Series) else _series("_key", keys)).hash()

    def add(self, batch) -> None:
        """`batch`: an Arrow record batch `_rn, _key, _kh, _fp, _rkh, _prior, h0, ..`, kept as a
        copy: a batch imported through Arrow's C interface (DuckDB's) is freed as a whole, so any
        column kept would hold the whole streamed batch, values and send flags included (measured at
        10 fields: 413 instead of 289 bytes of RSS a streamed row)."""
        import polars as pl
        import pyarrow as pa

        with self._lock:
            part_id = self._next
            self._next += 1
        batch = pa.RecordBatch.from_arrays([pa.concat_arrays([column]) for column in batch.columns],
                                           schema=batch.schema)
        part = pl.from_arrow(batch)
        part = part.with_columns(self.hash(part.get_column("_key")).alias("_h"),
                                 pl.lit(part_id, dtype=pl.UInt32).alias("_part"))
        with self._lock:
            self._parts.append(part)
            self._left[part_id] = part.height

    @staticmethod
    def _gather(parts, starts: list[int], positions):
        """The rows at `positions` (a sorted Polars Series) of the parts laid end to end (`starts`:
        where each begins, and where the last ends)."""
        import polars as pl

        bounds = positions.search_sorted(pl.Series(starts, dtype=positions.dtype), side="left").to_list()
        pieces = []
        for j, part in enumerate(parts):
            lo, hi = bounds[j], bounds[j + 1]
            if lo == hi:
                continue
            local = positions.slice(lo, hi - lo) - starts[j]
            whole = hi - lo == part.height and local[0] == 0 and local[-1] == part.height - 1 and (
                hi - lo == 1 or bool((local.diff().drop_nulls() > 0).all()))
            pieces.append(part if whole else part[local])
        return pl.concat(pieces, rechunk=False) if pieces else parts[0].clear()

    @staticmethod
    def _one_per_row(rows):
        """A key given twice (in one slice, or in two) takes its row once."""
        if (rows.get_column("_rn").sort().diff() == 0).any():
            return rows.unique(subset="_rn", keep="any")
        return rows

    def take(self, keys):
        """(an Arrow table of the rows of `keys` found here, one per row: `_rn, _key, _kh, _fp,
        _rkh, _replace, h0, ..`, or None when nothing was; an Arrow array of the keys not found)."""
        import polars as pl

        with self._taking:
            with self._lock:  # the parts streamed so far; the stream may add others meanwhile
                parts = list(self._parts)
            if not parts:
                return None, keys
            hashes = pl.concat([part.select("_h") for part in parts]).with_row_index("_i")
            starts = [0]
            for part in parts:
                starts.append(starts[-1] + part.height)
            found, missing, counts = [], [], []
            for start in range(0, len(keys), self.SLICE):  # bounded transient memory
                ack = _series("_ack", keys.slice(start, self.SLICE)).to_frame()
                ack = ack.with_columns(self.hash(ack.get_column("_ack")).alias("_h"))
                # positions by hash first (small), then the rows themselves, part by part (a part
                # taken whole is not copied), checked against the key
                at = ack.join(hashes, on="_h", how="inner", maintain_order="none").sort("_i")
                hit = self._gather(parts, starts, at.get_column("_i"))
                same = hit.get_column("_key") == at.get_column("_ack")
                if not same.all():
                    hit = hit.filter(same)
                hit = self._one_per_row(hit)
                if hit.height < ack.height:
                    missing.append(ack.join(hit.select(pl.col("_key").alias("_ack")), on="_ack", how="anti")
                                   .get_column("_ack"))
                if hit.height:
                    counts.extend(hit.get_column("_part").value_counts().iter_rows())
                    found.append(hit.drop("_h", "_part"))
            with self._lock:
                for part_id, n in counts:
                    if part_id in self._left:  # (not if the parts were cleared meanwhile)
                        self._left[part_id] -= n
                done = {p for p, left in self._left.items() if left <= 0}
                if done:
                    for p in done:
                        del self._left[p]
                    self._parts = [part for part in self._parts if part.get_column("_part")[0] not in done]
        rest = pl.concat(missing).unique().to_arrow() if missing else keys.slice(0, 0)
        if not found:
            return None, rest
        taken = self._one_per_row(pl.concat(found)) if len(found) > 1 else found[0]
        # in one chunk: DuckDB inserts an Arrow table of several chunks with several threads, each
        # filling row groups of its own, which cuts a commit of whole row groups into parts
        return taken.rename({"_prior": "_replace"}).rechunk().to_arrow(), rest


class CommitMixin:
    """The commit side of `Planner` (see planner.py for the attributes used here)."""

    def commit_acknowledged(self, keys: Any, also: Callable[[], None] | None = None) -> int:
        """Record acknowledged added/changed keys in the snapshot, in one transaction: the hashes of
        the values the plan sent, its fingerprint, no parking. Returns how many plan rows that was.
        `also`: a write run once, in that transaction when there is one (see _commit_keys)."""

        def write(n: dict[str, int]) -> None:
            if n["replace"]:
                self._execute("commit_delete")
            self._execute("commit_insert")

        return self._commit_keys(keys, write, also)["acknowledged"]

    def commit_rejected(self, keys: Any, also: Callable[[], None] | None = None) -> int:
        """Park added/changed keys rejected for their content: the snapshot records the plan's
        fingerprint as parked (what was delivered, if anything, is kept), so the row is not planned
        again until its values change. Not for transient failures (they are retried next run).
        Returns how many plan rows were parked. `also`: as in commit_acknowledged."""

        def write(n: dict[str, int]) -> None:
            if n["replace"]:
                updated = self._execute("park_update")
                # a key taken for committed may have no snapshot row: looked for (an anti-join on
                # the snapshot) only when the update found fewer rows than keys, or cannot say
                if not self.row_position and (updated is None or updated < n["replace"]):
                    self._execute("park_insert_unfound")
            if n["acknowledged"] > n["replace"]:
                self._execute("park_insert")

        return self._commit_keys(keys, write, also)["acknowledged"]

    def unsettle_sendable(self) -> None:
        """Before sending: the snapshot forgets what it delivered for the keys about to be sent
        (unsettle_stage.sql), so that a write applied but never acknowledged (a reset after the
        write, a stop or a kill -9 while it was in flight) is sent again by the next run, even
        when the model went back to the values delivered before. Acknowledged rows' commits write
        their new values."""
        with self._lock:
            try:
                self._drop("unsettle")  # left by a run killed before its `finally` ran
                # an everyday plan's rows of those keys (prior.sql), else the snapshot's; a full
                # refresh's forget they were delivered (see unsettle_stage.sql)
                stage = "unsettle_stage_refresh" if self._planned_full_refresh else "unsettle_stage"
                self._execute("unsettle_stage_prior" if self._prior_kept else stage)
                with self._writing_state():
                    self._execute("unsettle_delete")
                    self._execute("unsettle_insert")
            finally:
                self._drop("unsettle")
                if self._prior_kept:
                    self._prior_kept = False
                    self._drop("prior")

    def _commit_keys(self, keys: Any, write: Callable[[dict[str, int]], None],
                     also: Callable[[], None] | None = None) -> dict[str, int]:
        """Collect the plan rows of `keys` (_collect) and `write` them in one transaction; committed
        rows are remembered (_mark_done). `also` runs once: in that transaction (a statement
        there costs no commit of its own), or alone when there is nothing to write. Returns
        _collect's counts."""
        arr = _keys_array(keys)
        n = {"acknowledged": 0, "replace": 0}
        if len(arr):
            with self._lock:
                try:
                    n = self._collect(arr)
                    if n["acknowledged"]:
                        with self.warehouse.room_for(arr.nbytes), self._writing_state():
                            write(n)
                            if also is not None:
                                also()
                                also = None
                        self._mark_done()
                except BaseException:
                    # the commit's error is the run's: dropping the scratch tables fails too when the
                    # warehouse went away, and took its place (the next run drops them)
                    with contextlib.suppress(Exception):
                        self._release_acked()
                    raise
                self._release_acked()
        if also is not None:
            also()
        return n

    def release_streamed(self, keys: Any) -> None:
        """Rows this run will not commit (failed, not found): let go of what the stream carried for
        them, so that the rows kept stay bounded by the rows in flight."""
        if self.row_position:
            arr = _keys_array(keys)
            if len(arr):
                self._streamed.take(arr)

    def _collect(self, arr) -> dict[str, int]:
        """Collect the plan rows of the keys into `acked` (what a commit records for each one, and
        `_replace`: whether the snapshot may hold the key) and count them. Rows the planner
        streamed come from what it carried (`StreamedRows`): read in place where the warehouse can
        (`Capabilities.arrow_views`), else written as a table; other keys are looked for in the
        plan."""
        import pyarrow as pa

        schema = self.commit_schema
        self._release_acked()
        found, rest = self._streamed.take(arr) if self.row_position else (None, arr)
        if found is not None and len(rest) == 0 and self.arrow_views:
            if self._committed_before(found.column("_rn")):  # some key again: its snapshot row exists
                found = found.set_column(found.schema.get_field_index("_replace"), "_replace",
                                         pa.repeat(True, found.num_rows))
            self.warehouse.view_arrow(schema, self.scratch_tables["acked"], found)
            self._acked_view = True
            replace = found.column("_replace").combine_chunks()
            return {"acknowledged": found.num_rows, "replace": replace.true_count}
        if found is not None:
            self.warehouse.write_arrow(schema, self.scratch_tables["acked"], found, mode="replace")
        if found is None or len(rest):
            ack = pa.table({"_key": rest})
            if not self.row_position:  # which keys this run may have committed already
                ack = ack.append_column("_again", self._committed_again(rest))
            self.warehouse.write_arrow(schema, self.ack_table, ack, mode="replace")
            self._execute("acked" if found is None else "acked_rest")
        if self.row_position and self._committed_before(self.warehouse.query(self.render("acked_positions")).column(0)):
            self._execute("acked_replace_all")
        return self._row("ack_count")

    def _release_acked(self) -> None:
        """Drop the scratch tables of a commit."""
        if self._acked_view:
            self.warehouse.drop_arrow_view(self.commit_schema, self.scratch_tables["acked"])
            self._acked_view = False
        self._drop("ack", "acked")

    def _committed_before(self, positions) -> bool:
        """Whether some plan row of this commit (its `positions`, an Arrow array) was committed
        earlier in this run (its snapshot row must then be replaced): from the bitmap of committed
        positions. (Without a row position, see _committed_again.)"""
        import polars as pl

        rn = _series("rn", positions).cast(pl.UInt64)
        self._acked_rn = rn
        top = int(rn.max() or 0) + 1
        with self._done_lock:
            if self._done is None:
                self._done = pl.Series("done", [], dtype=pl.Boolean)
            if len(self._done) < top:  # grow geometrically
                self._done = self._done.extend_constant(False, max(2 * top, 1024) - len(self._done))
            return bool(self._done.gather(rn).any())

    # Bits of the filter of keys committed by a run without a row position (2^26 bits: 8 MB; at 1M
    # keys ~0.1% of keys not committed before are taken for committed, at 10M ~7%).
    AGAIN_BITS = 1 << 26

    def _committed_again(self, keys):
        """Without a row position: for each key, whether this run may have committed it already
        (an Arrow boolean array). A Bloom filter over two slices of the key's hash: a key committed
        before is never missed; a key wrongly taken for one only has its snapshot row looked for
        (a delete that finds nothing). Keys given to the commit are remembered at `_mark_done`."""
        import polars as pl

        h = StreamedRows.hash(keys)
        mask = self.AGAIN_BITS - 1
        idx = ((h & mask).cast(pl.UInt32), ((h // (1 << 32)) & mask).cast(pl.UInt32))
        self._again_idx = idx
        with self._done_lock:
            if self._done is None:
                return pl.repeat(False, len(h), dtype=pl.Boolean, eager=True).to_arrow()
            return (self._done.gather(idx[0]) & self._done.gather(idx[1])).to_arrow()

    def _mark_done(self) -> None:
        """Remember the rows just committed: positions (row position) or keys (see _committed_again)."""
        import polars as pl

        with self._done_lock:
            if self.row_position:
                self._done.scatter(self._acked_rn, True)
                return
            if self._done is None:
                self._done = pl.repeat(False, self.AGAIN_BITS, dtype=pl.Boolean, eager=True)
            for idx in self._again_idx:
                self._done.scatter(idx, True)

    def commit_removed(self) -> int:
        """Delete the plan's removed keys (and parked keys that left the segment) from the
        snapshot; returns how many delivered keys left it."""
        with self._lock:
            if self._leaving == 0:
                return 0  # nothing left the segment: no statement at all
            parts = self._removal_parts()
            if parts == 1:
                with self._writing_state():
                    n = self._scalar("removed_count")
                    self._execute("commit_removed")
            else:  # each part its own transaction: a part not committed is planned as removed again
                n = 0
                for part in range(parts):
                    with self._writing_state():
                        n += self._scalar("removed_count_part", parts=parts, part=part)
                        self._execute("commit_removed_part", parts=parts, part=part)
            self._leaving = 0
            return n

    def _removal_parts(self) -> int:
        """In how many parts the keys that left are deleted (Capabilities.delete_part_rows)."""
        most = getattr(self.warehouse.capabilities, "delete_part_rows", None)
        return max(1, -(-(self._leaving or 0) // most)) if most else 1

    def commit_full_refresh_cleanup(self) -> int:
        """After a successful full-refresh run: delete snapshot rows whose key left the segment."""
        with self._lock:
            self._require_full_refresh_plan()
            with self._writing_state():
                n = self._scalar("cleanup_count")
                if n:
                    self._execute("commit_full_refresh_cleanup")
                return n
