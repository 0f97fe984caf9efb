"""Records whose outcome arrives later: stashed at a checkpoint, resolved in this run or a later one.

A file import or an asynchronous bulk job answers after the run sent its records. Their plan rows
(the hashes of what was sent) are copied at the next checkpoint into `pend_<sync>` in the state
schema, under the token that names the outcome (a file name, a job id), so that a crash or the
end of the run loses nothing: whichever run reads the outcome commits from that copy, never from
a plan that may have been rebuilt since.

    planner.stash_pending_many([(token, keys), ...])   # at a checkpoint (stash_pending: one)
    planner.resolve_pending(ok=..., rejected=..., forget=...)   # when the outcome is known
    planner.pending_tokens()                           # what a new run asks the platform about

Acknowledged records enter the snapshot, records rejected for their content are parked (as
`commit_rejected` does), failed or not-found ones are forgotten (not in the snapshot, they are
sent again). A key sent again replaces its older pending row, so an old outcome never overwrites
a newer one.
"""
from __future__ import annotations

import datetime as dt
from typing import Any, Sequence


class PendingMixin:
    """The pending side of `Planner` (see planner.py for the attributes used here)."""

    def _ensure_pending(self) -> None:
        """Create the pending table, or add columns of fields mapped since it was created (looked
        up once per planner: every checkpoint stashes)."""
        if self._pending_ready:
            return
        existing = self.warehouse.table_columns(self.spec.state_schema, self.pending_table)
        if existing is None:
            self._execute("create_pending")
        else:
            for f in self.fields:
                if f.snap_name not in existing:
                    self._execute("add_pending_column", column=f.snap_name)
        self._pending_ready = True

    def _pending_exists(self) -> bool:
        return self._pending_ready or self.warehouse.table_columns(self.spec.state_schema,
                                                                   self.pending_table) is not None

    def stash_pending(self, keys: Any, token: str) -> int:
        """Keep the plan rows of `keys` (added/changed rows of this run's plan) as pending under
        `token`. Idempotent per key; returns how many plan rows were kept."""
        return self.stash_pending_many([(token, keys)])

    def stash_pending_many(self, stashes: Sequence[tuple[str, Any]]) -> int:
        """`stash_pending` of several (token, keys) at once, as one checkpoint commits them: one
        collection of the plan rows, one delete and insert, the tokens set by one statement (a key in
        several takes the last one's token, as stashing them in turn did). One transaction of four
        statements a stash took ~7 ms on DuckDB, and a statement each is what a remote warehouse
        pays most for: an Attentive run stashes a token per bulk job, up to 100 a second."""
        import pyarrow as pa

        from .commit import _keys_array

        if len(stashes) == 1:
            [(token, keys)] = stashes
            arr, tokens = _keys_array(keys), None
        else:
            token_of: dict[str, str] = {}
            for token, keys in stashes:
                token_of.update(dict.fromkeys(_keys_array(keys).to_pylist(), token))
            arr = pa.array(list(token_of), pa.string())
            distinct = set(token_of.values())
            if len(distinct) == 1:  # several stashes of one outcome: its token bound, as for one
                [token], tokens = distinct, None
            else:
                tokens = pa.table({"_key": arr, "_token": pa.array(list(token_of.values()), pa.string())})
        if len(arr) == 0:
            return 0
        with self._lock, self.warehouse.beyond_inserts():  # (a first sync's pool is for inserts)
            self._ensure_pending()
            try:
                n = self._collect(arr)
                if n["acknowledged"]:
                    if tokens is not None:
                        self.warehouse.write_arrow(self.commit_schema, self.scratch_tables["tokens"], tokens,
                                                   mode="replace")
                    try:
                        with self._writing_state():
                            self._execute("stash_delete")
                            self._execute("stash_insert")
                            if tokens is not None:
                                self._execute("stash_tokens")
                            else:
                                q = self.warehouse.quote
                                self.warehouse.execute(
                                    f"UPDATE {self.warehouse.table_name(self.spec.state_schema, self.pending_table)} "
                                    f"SET {q('_token')} = :token WHERE {q('_token')} IS NULL", {"token": token})
                    finally:
                        if tokens is not None:
                            self._drop("tokens")
            finally:
                self._release_acked()
            return n["acknowledged"]

    def resolve_pending(self, ok: Sequence[str] = (), rejected: Sequence[str] = (),
                        forget: Sequence[str] = ()) -> tuple[int, int]:
        """Apply outcomes to pending records: `ok` into the snapshot, `rejected` parked, `forget`
        (failed, not found) dropped. Keys not pending are ignored. Returns (acknowledged, parked)."""
        import pyarrow as pa

        if not (ok or rejected or forget) or not self._pending_exists():
            return 0, 0
        scratch = self.commit_schema
        counts = [0, 0]
        with self._lock, self.warehouse.beyond_inserts():  # (a first sync's pool is for inserts)
            self._ensure_pending()  # fields mapped since the records were sent: their columns
            for i, (keys, steps) in enumerate((
                    (ok, ("pending_ok_delete", "pending_ok_insert")),
                    (rejected, ("pending_park_update", "pending_park_insert")),
                    (forget, ()))):
                if not keys:
                    continue
                self.warehouse.write_arrow(scratch, self.ack_table,
                                           pa.table({"_key": pa.array(list(dict.fromkeys(keys)), pa.string())}),
                                           mode="replace")
                try:
                    with self._writing_state():
                        if i < 2:
                            counts[i] = self._pending_matches()
                        for step in steps:
                            self._execute(step)
                        self._execute("pending_forget")
                finally:
                    self._drop("ack")
        return counts[0], counts[1]

    def _pending_matches(self) -> int:
        table = self.warehouse.table_name(self.spec.state_schema, self.pending_table)
        ack = self.warehouse.table_name(self.commit_schema, self.ack_table)
        key = self.warehouse.quote("_key")  # quoted as the templates create it (Snowflake folds unquoted names)
        return int(self.warehouse.scalar(f"SELECT COUNT(*) FROM {table} WHERE {key} IN (SELECT {key} FROM {ack})") or 0)

    def pending_keys(self, token: str) -> set[str]:
        """The keys whose newest send awaits the outcome named by `token` (a key sent again since
        is pending under its newer token only)."""
        if not self._pending_exists():
            return set()
        table = self.warehouse.table_name(self.spec.state_schema, self.pending_table)
        q = self.warehouse.quote
        rows = self.warehouse.rows(f"SELECT {q('_key')} AS k FROM {table} WHERE {q('_token')} = :token",
                                   {"token": token})
        return {r["k"] for r in rows}

    def pending_tokens(self) -> dict[str, int]:
        """Tokens of outcomes still awaited -> how many records each stands for."""
        if not self._pending_exists():
            return {}
        rows = self.warehouse.rows(self.render("pending_tokens"))
        return {r["_token"]: int(r["_n"]) for r in rows}

    def expire_pending(self, older_than: dt.timedelta) -> int:
        """Forget pending records older than `older_than` (an outcome that will never come): they
        are sent again. Returns how many."""
        if not self._pending_exists():
            return 0
        cutoff = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - older_than
        table = self.warehouse.table_name(self.spec.state_schema, self.pending_table)
        with self._lock:
            stashed = self.warehouse.quote("_stashed_at")
            n = int(self.warehouse.scalar(f"SELECT COUNT(*) FROM {table} WHERE {stashed} < :cutoff",
                                          {"cutoff": cutoff}) or 0)
            if n:
                self.warehouse.execute(f"DELETE FROM {table} WHERE {stashed} < :cutoff", {"cutoff": cutoff})
        return n
