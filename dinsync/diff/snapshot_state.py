"""The sync's state tables in the state schema: the snapshot made, extended and forgotten.

`SnapshotStateMixin` is the state side of `Planner` (see planner.py for the attributes used here):
`ensure_state` creates the schema and the snapshot table or adds the columns of new fields and of
later layouts; the `forget_*` methods make the next plan compare, re-key or resend rows; and before
the first statement, `_refuse_foreign_tables` checks that tables of the sync's names are dinsync's.
"""
from __future__ import annotations

import re
from typing import Sequence

from ..errors import ConfigError, ConfigIssue

INTERNAL_COLUMNS = ("_kh", "_fp", "_rkh", "_pfp")  # snapshot columns added by later layouts
# The columns of the tables a sync's planner creates (snapshot, pending, plan and scratch tables):
# dinsync's own (`_key`, `_kh`, ...), a field's hash (`f_<16 hex>`) and per-field values (`v0`, `x0`,
# `h0`). A table of such a name with another column is someone else's (see _refuse_foreign_tables).
_OWN_COLUMN = re.compile(r"_\w*|f_[0-9a-f]{16}|[a-z][0-9]+")


class SnapshotStateMixin:
    """The state side of `Planner` (see planner.py for the attributes used here)."""

    def _refuse_foreign_tables(self) -> None:
        """The tables of this sync that live in the state schema (its snapshot and pending tables,
        and its plan and scratch tables where the warehouse has no scratch database of its own),
        when they exist, must be dinsync's: a state_schema shared with other tables (`public`, a
        dbt schema) may hold a `plan_users` or `cur_users` of someone else's, which the plan would
        drop and replace, or alter (a `snap_users`). Raises ConfigError naming them; changes nothing."""
        schema = self.spec.state_schema
        names = [self.snapshot_table, self.pending_table]
        commits = ("acked", "tokens")  # scratch tables of the commits' schema (see _context)
        if self.plan_schema == schema:
            names += [self.plan_table, *(name for t, name in self.scratch_tables.items() if t not in commits)]
        if self.commit_schema == schema:
            names += [self.ack_table, *(name for t, name in self.scratch_tables.items() if t in commits)]
        foreign = []
        found = self.warehouse.tables_columns(schema, list(dict.fromkeys(names)))
        scratch = {name: kind for kind, name in (*self.scratch_tables.items(), ("ack", self.ack_table))}
        for name, columns in found.items():
            theirs = [c for c in columns if not _OWN_COLUMN.fullmatch(str(c).lower())]
            if theirs or not any(str(c).startswith("_") for c in columns):
                foreign.append(f"{name} (with {', '.join(map(str, (theirs or columns)[:3]))}"
                               f"{', …' if len(theirs or columns) > 3 else ''})")
            elif name in scratch:  # a killed run's: the next plan drops them (drop_leftover_scratch)
                self._leftover_scratch.append(scratch[name])
        if foreign:
            raise ConfigError([ConfigIssue(
                f"the state schema {schema} holds tables dinsync did not create: {'; '.join(foreign)}; "
                f"sync {self.spec.sync} would drop or alter them", "dinsync.yml",
                hint="set state_schema to a schema of dinsync's own (default: dinsync), or rename those tables")])
        self._tables_checked = True

    def drop_leftover_scratch(self) -> None:
        """Drop the scratch tables a run killed midway left in the state schema (found by
        _refuse_foreign_tables): a run drops its own when the step that made them ends, and a
        dead run's only went with the next run that reached the same step (one that had rows to
        send for `unsettle_<sync>`, to commit for `ack_<sync>`), so a next run with nothing to
        send left them there. Called under the sync's lock (by `plan`)."""
        leftover, self._leftover_scratch = self._leftover_scratch, []
        self._drop(*dict.fromkeys(leftover))

    def ensure_state(self, dry_run: bool = False) -> None:
        """Create the schema and snapshot table if missing; add hash columns for new fields. A dry
        run (`dinsync plan`) keeps the rows' parking when it adds one: a plan of a branch's files
        must not make the next sync of other files send the parked rows again."""
        with self._lock:
            self.warehouse.create_schema(lambda: self._execute("create_schema"), self.spec.state_schema)
            existing = self.warehouse.table_columns(self.spec.state_schema, self.snapshot_table)
            if existing is None:
                self._execute("create_snapshot")
                self._added_columns |= {f.snap_name for f in self.fields}
                self._fingerprints_forgotten = True  # (an empty snapshot)
            else:
                have = set(existing)
                for column in INTERNAL_COLUMNS:  # layout additions: never drop, only add
                    if column not in have:
                        self._execute("add_snapshot_column", column=column)
                if "_kh" not in have:
                    self._execute("backfill_key_hash")
                new = [f for f in self.fields if f.snap_name not in have]
                if new:  # every row is compared again: a renamed field reads the same columns
                    self._execute("forget_fingerprints_keep_parked" if dry_run else "forget_fingerprints")
                    self._fingerprints_forgotten = True
                for f in new:
                    self._execute("add_snapshot_column", column=f.snap_name)
                    self._added_columns.add(f.snap_name)
            self._state_ready = True

    def forget_fingerprints(self, resend: Sequence[str] = ()) -> None:
        """Make the next plan compare every row field by field (the mapping changed in a way the
        rows' fingerprints, which hash the mapped columns' values, do not show: fields renamed or
        swapped between columns, a field's type). Rows whose values are unchanged then cost a
        refresh; parked rows are sent once more (rejected under the old mapping). The destination
        fields in `resend` (their type changed: what they delivered was written in another form)
        are sent for every row."""
        with self._lock:
            if not self._state_ready:
                self.ensure_state()
            for f in self.fields:
                if f.field in resend and f.snap_name not in self._added_columns:
                    self._execute("forget_field", column=f.snap_name)
            if not self._fingerprints_forgotten:  # (ensure_state did it when it added a column)
                self._execute("forget_fingerprints")
                self._fingerprints_forgotten = True
            # records whose outcome is awaited were stashed under the old mapping: acknowledged by a
            # later run (which finds the new mapping recorded), they must not enter as delivered under it
            pending = self.warehouse.table_columns(self.spec.state_schema, self.pending_table)
            if pending is not None:
                for f in self.fields:
                    if f.field in resend and f.snap_name in pending:
                        self._execute("pending_forget_field", column=f.snap_name)
                self._execute("pending_forget_fingerprints")

    def holds_rows(self) -> bool:
        """The snapshot holds a row (delivered or parked): the sync ran before."""
        with self._lock:
            if not self._state_ready:
                self.ensure_state()
            return not self._scalar("snapshot_empty")

    def forget_raw_keys(self) -> None:
        """Make the next plan read every model row's key again (the key normalisation changed: a
        phone key's default region), also for records awaiting their outcome (see
        forget_raw_keys.sql)."""
        with self._lock:
            if not self._state_ready:
                self.ensure_state()
            self._execute("forget_raw_keys")
            if self._pending_exists():
                self._execute("pending_forget_raw_keys")

    def forget_snapshot(self) -> None:
        """Forget every row of the snapshot (delivered or parked): the sync now sends to another
        destination, which holds none of them (see forget_snapshot.sql)."""
        with self._lock:
            if not self._state_ready:
                self.ensure_state()
            with self._writing_state():
                self._execute("forget_snapshot")
