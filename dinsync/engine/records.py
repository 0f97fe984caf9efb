"""What a sync's runs remember of its configuration, in the state schema's `meta` table: the mapped
fields (`mapping:<sync>`), the destination (`destination:<sync>`), the destination field that
matches its records (`match:<sync>`), the default region of its phone numbers
(`phone_region:<sync>`, the destination's `phone_region`), the rule its phone keys were read by
(`phone_keys:<sync>`, PHONE_KEY_RULE) and the destination's settings that shape how values are
written (`forms:<sync>`, Destination.value_forms: another one sends the fields it shapes for every row).

The snapshot says what was delivered under that configuration. When the sync file changes between
runs in a way the rows' fingerprints do not show, the snapshot no longer says what the platform
holds: fields renamed, swapped between columns or given another `type:` (the next run compares
every row field by field, and sends a retyped field for every row), or another destination or
service, or another matching field (`match.field`: the keys name other records, even where their
text is the same, e.g. an email column matched as `userId` instead of `email`), or a destination
that now reaches another address (`account:<sync>`, Destination.account: a `base_url` or `region`
moved from a sandbox to the platform, Splio's `universe`): the run forgets the snapshot and sends
every row. Another phone region reads the same phone numbers written in national
form as other numbers: the next run reads every row's key again (a phone key that changed is sent
as added), sends the phone fields for every row, and the rows parked under the old region once
more. Phone keys read by an older rule (before PHONE_KEY_RULE, a key holding a non-ASCII digit or a
letter was its ASCII digits: another number) are read again by the next run, once. A dry run
(`plan`) only says so in a note: a plan of a branch's files must not change what the
next sync of production's files sends.

The snapshot also says nothing of what *other* syncs wrote to the same records (same destination,
service and matching field): a file renamed and renamed back, a renamed copy run with `--select`, a
sync deleted and added again later. So each field of those records keeps, per sync that wrote it,
when it first did and when it last caught up (`wrote:<destination> by <match field>:<field>`, JSON
{sync: {"first": t, "last": t}}), recorded before a run sends it: `last` moves only with a resend
(an older `last` only errs towards a resend, so the everyday run writes nothing). A sync that finds
another sync that *started* writing a field after its own last write of it sends that field for
every row (its hashes forgotten: a value changed back to what its snapshot holds would never be sent
otherwise), once: it then records that it wrote the field, later than the other's start. A sync that
never wrote a field has no hashes of it to doubt (a first sync, or a newly mapped field, sends it
for every row anyway). Syncs writing other fields of the same records never resend anything; of
syncs writing the same field all along (to disjoint segments, say: `paid_users` and `free_users`
both setting `plan`), the one that wrote it first resends it once, when the other first appears, and
never again. The records are read in the query that reads the others, so the everyday run pays
nothing for it.

Limits: which rows the other sync wrote is not known, so the whole field is resent; two syncs that
keep writing the same rows' field alternately (a copy run again and again, a file renamed back and
forth) are caught the first time only: a value changed and changed back later is not sent again.
Times are seconds since the epoch on the clock of the host that ran the sync: syncs of the same
records run from hosts whose clocks disagree by more than the time between their runs may miss (or
repeat) a resend.
"""
from __future__ import annotations

import json
import threading
import time
from typing import Collection

import orjson

# The `wrote:` records are shared by the syncs writing the same records, and each write reads them,
# adds the sync and replaces the row: two syncs doing so at once (`serve --parallel`, the API in
# threads) lost one's record, or failed the run on the key's uniqueness (DuckDB: "Duplicate key
# "key: wrote:..." violates primary key constraint"). One at a time in a process; and a write another
# process made at the same instant (two `dinsync sync` of such syncs on PostgreSQL: the second
# insert of the key fails on its uniqueness) is read, and the record written again.
_SHARED_WRITES = threading.Lock()
SHARED_WRITE_ATTEMPTS = 5
NOTE_WRITERS = 5  # the other syncs a note names (then "and N more")


def mapping_record(fields) -> str:
    """The mapped fields as kept in `meta` (`mapping:<sync>`): {field: [column, type, custom]}."""
    return json.dumps({f.field: [f.column, f.type, f.custom] for f in fields}, sort_keys=True, separators=(",", ":"))


def resent_fields(known: str, fields) -> list[str]:
    """The fields of `fields` to send for every row after the mapping record `known`: those it maps
    with another type or custom flag, and those it does not map (newly mapped, or mapped again: the
    snapshot keeps a field's hashes while it is unmapped, and they describe the form it was delivered
    in then, under another type, say, or before it was renamed away and back)."""
    try:
        before = json.loads(known)
    except ValueError:
        return []
    if not isinstance(before, dict):
        return []
    return [f.field for f in fields
            if not isinstance(before.get(f.field), list) or before[f.field][1:] != [f.type, f.custom]]


# The rule phone keys are read by (dinsync.diff.keys), recorded per sync once its keys were read by
# it. "2": only ASCII digits, a leading '+' and separators; a key holding anything else is kept as
# written (rejected). Before it (no record), such a key was reduced to its ASCII digits, so a
# snapshot may hold it under another number: the sync reads every row's key again, once.
# "3": without a region, a number in national form keeps its digits without '+' (rejected); under
# "2" it was '+' and its digits, another country's number (US 201 555 0002 -> +2015550002).
PHONE_KEY_RULE = "3"


class SyncRecords:
    """The records of one sync (`cfg`, sending to `dest_cfg`), read once a run by `moved_from`."""

    def __init__(self, state, planner, cfg, dest_cfg, phone_region: str | None = None, phone_key: bool = False,
                 phone_fields: tuple[str, ...] = (), account: str | None = None):
        self.state, self.planner, self.cfg = state, planner, cfg
        self.account = account  # where the destination's writes land (Destination.account)
        self._account: str | None = None  # ... as recorded: the snapshot was delivered there
        self._reaccounted = False  # moved_from found only the destination's address changed
        self.phone_region = phone_region or ""  # "" (no region) as recorded
        self.phone_key, self.phone_fields = phone_key, list(phone_fields)
        self.destination_id = f"{cfg.destination} ({dest_cfg.type} {cfg.service})"
        self._known: dict[str, str] = {}
        self._sent_to: str | None = None  # the destination the snapshot was delivered to
        self._matched_by: str | None = None  # ... and the field that matched its records there
        self._rematched = False  # moved_from found only the matching field changed
        self._recased: str | None = None  # moved_from found only a sync of this name in another case
        self.records_id = f"{self.destination_id} by {cfg.match_field}"  # the records the sync writes
        # when this run started (seconds since the epoch, this host's clock): recorded as the time
        # this sync wrote a field (see record_writes); SyncRun.run sets it as it starts
        self.run_started = time.time()

    @property
    def _destination_key(self) -> str:
        return f"destination:{self.cfg.name}"

    @property
    def _mapping_key(self) -> str:
        return f"mapping:{self.cfg.name}"

    @property
    def _account_key(self) -> str:
        return f"account:{self.cfg.name}"

    @property
    def _match_key(self) -> str:
        return f"match:{self.cfg.name}"

    @property
    def _types_key(self) -> str:
        return f"column_types:{self.cfg.name}"

    @property
    def _pruned_key(self) -> str:
        return f"rejections_pruned:{self.cfg.name}"

    @property
    def _region_key(self) -> str:
        return f"phone_region:{self.cfg.name}"

    @property
    def _phone_keys_key(self) -> str:
        return f"phone_keys:{self.cfg.name}"

    @property
    def _forms_key(self) -> str:
        return f"forms:{self.cfg.name}"

    def _wrote_key(self, field: str) -> str:
        return f"wrote:{self.records_id}:{field}"

    def moved_from(self) -> str | None:
        """The destination the sync's snapshot was delivered to, when its file now names another
        (`destination:` or `service:`), or matches its records by another field (`match.field`;
        returned then as that field): the snapshot says nothing of what the records now matched
        hold. Reads the sync's records (one query). A sync recorded before the matching field was
        (no `match:` record) is taken as matching by the field its file names."""
        self._known = self.state.meta_values(self._destination_key, self._account_key, self._mapping_key,
                                             self._match_key, self._region_key, self._phone_keys_key, self._types_key,
                                             self._forms_key, self._pruned_key,
                                             *(self._wrote_key(f.field) for f in self.cfg.fields))
        known = self._sent_to = self._known.get(self._destination_key)
        self._matched_by = self._known.get(self._match_key)
        self._account = self._known.get(self._account_key)
        self._rematched = self._reaccounted = False
        self._recased = None
        if known is None:
            self._recased = self._other_case_name()
            if self._recased is not None:
                return self._recased
        if known is not None and known != self.destination_id:
            return known
        if known is not None and None not in (self._account, self.account) and self._account != self.account:
            self._reaccounted = True
            return self._account
        if known is not None and self._matched_by is not None and self._matched_by != self.cfg.match_field:
            self._rematched = True
            return self._matched_by
        return None

    def _other_case_name(self) -> str | None:
        """The sync of this name in another case (its file renamed by case only) that has a
        destination record, when this sync has none. Where the warehouse's table names ignore case
        (DuckDB, Snowflake, Databricks), `snap_<sync>` is that sync's table, and this sync's records
        are none: its first run would find every row "unchanged" and send nothing, even to another
        destination. So it forgets that snapshot and sends every row, as a new sync does elsewhere."""
        others = self.state.meta_keys_in_other_case(self._destination_key)
        return others[0].split(":", 1)[1] if others else None

    def moved_note(self, moved: str) -> str:
        if self._recased is not None:
            return (f"sync {self.cfg.name} is new, and sync {moved} (its name in another case) may have held its "
                    "state tables (where the warehouse ignores the case of names): every row is sent, as with "
                    "--full-refresh")
        if self._reaccounted:
            return (f"sync {self.cfg.name}'s destination {self.cfg.destination} now reaches {self.account}, no longer "
                    f"{moved}: every row is sent, as with --full-refresh")
        if self._rematched:
            return (f"sync {self.cfg.name} now matches {self.destination_id} by {self.cfg.match_field}, no longer "
                    f"by {moved}: every row is sent, as with --full-refresh")
        return (f"sync {self.cfg.name} now sends to {self.destination_id}, no longer to {moved}: every row is "
                "sent, as with --full-refresh")

    def record_destination(self) -> None:
        """The snapshot now describes this destination and matching field (a run got past sending,
        or forgot the snapshot of another)."""
        if self._sent_to != self.destination_id:
            self.state.set_meta_value(self._destination_key, self.destination_id)
            self._sent_to = self.destination_id
        if self._matched_by != self.cfg.match_field:
            self.state.set_meta_value(self._match_key, self.cfg.match_field)
            self._matched_by = self.cfg.match_field
        if self.account is not None and self._account != self.account:
            self.state.set_meta_value(self._account_key, self.account)
            self._account = self.account

    def forget_old_destination(self) -> None:
        """A moved sync (or one matching by another field) forgets the old destination's snapshot,
        then records the new destination, before anything is sent: a run stopped or killed midway
        leaves what the new destination acknowledged, and the next run (no longer a full refresh)
        sends the rest, as added. In this order: stopped in between, the next run finds the old
        record and an empty snapshot, and sends every row."""
        self.planner.forget_snapshot()
        self.record_destination()

    def mapping_changed(self) -> bool:
        """The mapped fields differ from those the sync's last run recorded (a sync without a
        record: no)."""
        known = self._known.get(self._mapping_key)
        return known is not None and known != mapping_record(self.cfg.fields)

    def compare_if_remapped(self, dry_run: bool = False) -> str | None:
        """When the mapped fields (column, field, type, custom) changed since the record, every row
        is compared field by field: fields swapped between columns read the same columns, so the
        rows' fingerprints would not show it and the no-op check would send nothing; rows parked
        under the old mapping are sent once more; a field whose type changed is sent for every row
        (in its new form), and so is a field the record does not map (mapped again after a while:
        its snapshot hashes are those of its last deliveries, in the form of then). A sync without
        a record only records it. A dry run changes nothing and returns the note to show."""
        mapping = mapping_record(self.cfg.fields)
        known = self._known.get(self._mapping_key)  # read by moved_from
        if known == mapping:
            return None
        if dry_run:
            if known is None:
                return None
            retyped = resent_fields(known, self.cfg.fields)
            return (f"the mapping of sync {self.cfg.name} changed since its last run: the next sync compares every "
                    "row field by field" + (f" and sends {', '.join(retyped)} for every row" if retyped else "")
                    + " (this plan does not count that)")
        if known is not None:
            self.planner.forget_fingerprints(resend=resent_fields(known, self.cfg.fields))
        self.state.set_meta_value(self._mapping_key, mapping)
        return None

    def compare_if_retyped(self, dry_run: bool = False) -> str | None:
        """When a mapped column's type in the warehouse changed since the record (the model's SQL
        and the mapping unchanged: `timestamp` -> `timestamptz`, `real` -> `double precision`),
        every row is compared field by field. Where the fingerprint hashes values with their type's
        own hash (PostgreSQL: Warehouse.recorded_column_types) it stayed the same although the text
        sent did not, so no row was compared and the platform kept the old form until another field
        of the row changed. Rows whose text is the same cost a refresh; rows parked under the old
        type are sent once more, as where the fingerprint changes with a type (DuckDB). A sync
        without a record only records the types. A dry run changes nothing and returns the note."""
        kinds = getattr(self.planner, "column_kinds", None) or {}
        record = json.dumps(kinds, sort_keys=True) if kinds else None
        known = self._known.get(self._types_key)  # read by moved_from
        if record is None or known == record:
            return None
        try:
            before = json.loads(known) if known else {}
        except ValueError:
            before = {}
        retyped = sorted(c for c in kinds if isinstance(before, dict) and before.get(c, kinds[c]) != kinds[c])
        if dry_run:
            return (f"the type of {', '.join(retyped)} in model {self.cfg.model} changed since sync {self.cfg.name}'s "
                    "last run: the next sync compares every row field by field (this plan does not count "
                    "that)") if retyped else None
        if retyped:
            self.planner.forget_fingerprints()
        self.state.set_meta_value(self._types_key, record)
        self._known[self._types_key] = record
        return None

    def reread_if_region_changed(self, dry_run: bool = False) -> str | None:
        """When the destination's `phone_region` changed since the record: phone numbers written in
        national form are other numbers now. The next plan reads every row's key again (a phone
        key), sends the phone fields for every row, and the rows parked under the old region once
        more (rejected as numbers of the wrong country, say); other rows are compared and cost
        nothing more. A sync without a record only records it. A dry run changes nothing and returns
        the note to show."""
        known = self._known.get(self._region_key)  # read by moved_from
        if known == self.phone_region:
            return None
        if dry_run:
            if known is None:
                return None
            what = " and ".join(["reads every row's phone key again"] * self.phone_key
                                + [f"sends {', '.join(self.phone_fields)} for every row"] * bool(self.phone_fields))
            return (f"the phone_region of sync {self.cfg.name}'s destination changed since its last run "
                    f"({known or 'none'} -> {self.phone_region or 'none'}): the next sync "
                    f"{what or 'compares every row'} and sends the rows parked under the old region once more "
                    "(this plan does not count that)")
        if known is not None:
            if self.phone_key:
                self.planner.forget_raw_keys()
            self.planner.forget_fingerprints(resend=self.phone_fields)
        self.state.set_meta_value(self._region_key, self.phone_region)
        return None

    def resend_if_forms_changed(self, forms: dict[str, tuple[str, list[str]]], dry_run: bool = False) -> str | None:
        """When a setting of the destination that shapes how values are written (`forms`, from
        Destination.value_forms: Splio's `timezone`, say) changed since the record: the platform holds
        the old form of values the model did not change, so the next plan sends the fields it shapes
        for every row (and the parked rows once more). A sync without a record only records it. A
        dry run changes nothing and returns the note to show."""
        if not forms:
            return None
        record = json.dumps({k: v for k, (v, _) in forms.items()}, sort_keys=True, separators=(",", ":"))
        known = self._known.get(self._forms_key)  # read by moved_from
        if known == record:
            return None
        try:
            before = json.loads(known) if known else {}
        except ValueError:
            before = {}
        before = before if isinstance(before, dict) else {}
        changed = [k for k in sorted(forms) if k in before and before[k] != forms[k][0]]
        fields = list(dict.fromkeys(f for k in changed for f in forms[k][1]))
        if dry_run:
            if not fields:
                return None
            what = ", ".join(f"{k} {before[k] or 'none'} -> {forms[k][0] or 'none'}" for k in changed)
            return (f"sync {self.cfg.name}'s destination writes values in another form since its last run ({what}): "
                    f"the next sync sends {', '.join(fields)} for every row (this plan does not count that)")
        if fields:
            self.planner.forget_fingerprints(resend=fields)
        self.state.set_meta_value(self._forms_key, record)
        self._known[self._forms_key] = record
        return None

    def reread_if_phone_key_rule_changed(self, dry_run: bool = False) -> str | None:
        """When the sync's phone keys were read by an older rule (PHONE_KEY_RULE): the next plan
        reads every row's key again, once, so that a key holding a non-ASCII digit or a letter,
        recorded under the number its ASCII digits made, is kept as written (and rejected) and the
        other number leaves the snapshot; rows whose key reads the same are compared and cost
        nothing more (no field is resent). A sync that never ran, or whose key is not a phone
        number, only records the rule. A dry run changes nothing and returns the note to show."""
        known = self._known.get(self._phone_keys_key)  # read by moved_from
        if not self.phone_key or known == PHONE_KEY_RULE:
            return None
        # the sync ran: its snapshot's keys were read by an older rule (a dinsync before 2026-12-04
        # recorded no destination either: its snapshot says it ran)
        before = self._sent_to is not None or self.planner.holds_rows()
        if dry_run:
            if not before:
                return None
            return (f"sync {self.cfg.name}'s phone keys were read by an older rule (a key holding a non-ASCII digit or "
                    "a letter was its ASCII digits; without phone_region, a national number was another "
                    "country's): the next sync reads every row's phone key again "
                    "(this plan does not count that)")
        if before:
            self.planner.forget_raw_keys()
        self.state.set_meta_value(self._phone_keys_key, PHONE_KEY_RULE)
        return None

    def _writers(self, field: str, known: dict[str, str] | None = None) -> dict[str, dict[str, float]]:
        """{sync: {"first": t, "last": t}} of the syncs that wrote `field` to these records (as read
        by moved_from, or in `known`); a value that is not such a record counts as none."""
        try:
            writers = orjson.loads((self._known if known is None else known).get(self._wrote_key(field)) or "{}")
        except orjson.JSONDecodeError:
            return {}
        if not isinstance(writers, dict):
            return {}
        return {sync: times for sync, times in writers.items()
                if isinstance(times, dict) and all(isinstance(times.get(t), (int, float)) for t in ("first", "last"))}

    def written_by_others(self) -> dict[str, list[str]]:
        """{field: the other syncs that started writing it after this sync last did} for the fields
        this sync maps (read by moved_from). A field this sync never wrote has no hashes to doubt."""
        others = {}
        for f in self.cfg.fields:
            writers = self._writers(f.field)
            mine = writers.pop(self.cfg.name, None)
            later = [sync for sync, times in writers.items() if mine is not None and times["first"] > mine["last"]]
            if later:
                others[f.field] = sorted(later)
        return others

    def resend_if_written_by_others(self, dry_run: bool = False) -> str | None:
        """When another sync started writing fields this sync maps to the same records after this
        sync last wrote them, the snapshot's hashes of those fields say nothing of what the platform
        holds: they are forgotten, so the next plan sends them for every row, and this sync then
        records that it wrote them now (in this order: stopped in between, the next run forgets them
        again; once recorded, they are not resent again for the same writers). Returns the note to
        show (a dry run changes nothing)."""
        others = self.written_by_others()
        if not others:
            return None
        writers = sorted({sync for syncs in others.values() for sync in syncs})
        # (a project of one sync per segment: a new one is a later writer of 150 others' records;
        # naming every writer made each of their notes a few KB)
        named = ", ".join(writers[:NOTE_WRITERS]) + (f" and {len(writers) - NOTE_WRITERS} more"
                                                      if len(writers) > NOTE_WRITERS else "")
        who = f"sync {writers[0]}" if len(writers) == 1 else f"syncs {named}"
        what = (f"{who} wrote {', '.join(others)} to the same records ({self.records_id}) after this sync's "
                "last run: ")
        if dry_run:
            return what + "the next sync sends them for every row (this plan does not count that)"
        self.planner.forget_fingerprints(resend=list(others))
        self.record_writes(list(others), again=True)
        return what + "sending them for every row"

    def renamed_note(self, syncs: Collection[str]) -> str | None:
        """For a new sync (its first run, or a plan of it): the syncs not among `syncs` (the
        project's) that wrote fields it maps to its records, as read by moved_from. It may be one of
        them renamed, which starts anew (every row is sent) and leaves the old name's state. None for
        a sync that delivered before (a destination record: its snapshot emptied by its model, say)."""
        if self._sent_to is not None:
            return None
        gone = sorted({other for f in self.cfg.fields for other in self._writers(f.field)
                       if other != self.cfg.name and other not in syncs})
        if not gone:
            return None
        who = f"sync {gone[0]}, which is" if len(gone) == 1 else f"syncs {', '.join(gone)}, which are"
        return (f"sync {self.cfg.name} is new: every row is sent; {who} not in this project, wrote the same records "
                f"({self.records_id}): a sync renamed starts anew, and the old name's state stays "
                f"({', '.join(f'snap_{g}' for g in gone)} in the state schema: drop it once it is not wanted)")

    def unrecorded(self) -> set[str]:
        """The mapped fields this sync has no record of writing (as read by moved_from)."""
        return {f.field for f in self.cfg.fields if self.cfg.name not in self._writers(f.field)}

    def prune_due(self, every: float) -> bool:
        """Whether the sync's old rejection rows are due for deletion: not deleted within the last
        `every` seconds (as recorded by `pruned`, read by moved_from). Deleting them is two DML
        statements, milliseconds on DuckDB or PostgreSQL but seconds and a quota's share on
        BigQuery: once a day is enough for rows kept 30 days. A clock set back is due at once."""
        try:
            last = float(self._known[self._pruned_key])
        except (KeyError, ValueError):
            return True
        return not 0 <= time.time() - last < every

    def pruned(self) -> None:
        """Record that the sync's old rejection rows were deleted now (see prune_due)."""
        now = repr(time.time())
        self.state.set_meta_value(self._pruned_key, now)
        self._known[self._pruned_key] = now

    def record_writes(self, fields, again: bool = False) -> None:
        """This sync is about to write `fields` to its records: record it as their writer since this
        run's start, where it had no record (`again`: its `last` time becomes this run's start, after
        a resend). A `last` left older than the sync's true last write only errs towards a resend
        (another sync that started writing in between is taken as later), so the everyday run writes
        nothing. The records are read again just before (a sync of another name may have written
        its own since this run read them)."""
        keys = {self._wrote_key(f): f for f in fields
                if again or self.cfg.name not in self._writers(f)}
        if not keys:
            return
        from ..warehouses.errors import WarehouseConflict, WarehouseConstraintViolation

        for attempt in range(1, SHARED_WRITE_ATTEMPTS + 1):
            try:
                with _SHARED_WRITES:
                    return self._record_writes(keys, again)
            except (WarehouseConstraintViolation, WarehouseConflict):
                if attempt == SHARED_WRITE_ATTEMPTS:
                    raise
            time.sleep(0.05 * attempt)

    def _record_writes(self, keys: dict[str, str], again: bool) -> None:
        """record_writes' read and write (in a process: one at a time)."""
        fresh = self.state.meta_values(*keys)
        new = {}
        for key, field in keys.items():
            writers = self._writers(field, fresh)
            mine = writers.get(self.cfg.name)
            if mine is not None and (not again or mine["last"] == self.run_started):
                continue
            writers[self.cfg.name] = {"first": mine["first"] if mine else self.run_started,
                                      "last": self.run_started}
            new[key] = orjson.dumps(writers, option=orjson.OPT_SORT_KEYS).decode()
        self._known.update(fresh)
        if new:
            self.state.set_meta_values(new)
            self._known.update(new)
