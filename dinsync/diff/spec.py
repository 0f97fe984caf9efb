"""What a sync's diff is asked for, and what its plan counts.

`DiffSpec` is the sync as the planner sees it (its model's SQL, key, fields and state schema),
checked when it is made; `PlanStats` the counts of a plan; `MappedField` one mapped field with its
snapshot column. The names of the tables a sync's planner creates are here too, with the check that
the warehouse can hold them (`check_table_names`, also run by `dinsync check`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .keys import KEY_NORMALIZATIONS
from .render import SqlError, check_identifier, check_sync_name

# The tables a sync's planner names `<prefix>_<sync>`: its state (snapshot, plan, acknowledged keys,
# pending outcomes) and its scratch tables (`seg` too, where the warehouse hashes segments).
STATE_TABLES = ("snap", "plan", "ack", "pend")
SCRATCH_TABLES = ("buckets", "cand", "cur", "prior", "acked", "unsettle", "tokens")
LONGEST_PREFIX = max(("seg", *STATE_TABLES, *SCRATCH_TABLES), key=len)


def check_table_names(warehouse: Any, sync: str) -> None:
    """Refuse (the warehouse's error, with its hint) a sync whose table names are longer than the
    warehouse's identifiers: PostgreSQL truncates such a name to 63 bytes, so two syncs whose names
    share their first ~55 characters shared one snapshot, and a refused `ack_<sync>` failed each run
    only after it had sent every row."""
    check = getattr(warehouse, "check_identifier", None)
    if check is not None:
        check(f"{LONGEST_PREFIX}_{sync}", "table name")


@dataclass(frozen=True)
class DiffSpec:
    sync: str  # sync name: [A-Za-z0-9_]+ (used in table names)
    model_sql: str  # the user's SELECT, in the warehouse's dialect
    key_column: str  # model column holding the matching key
    key_normalization: str  # see keys.py: "email", "lower", "trim", "none" or "phone"
    fields: list[tuple[str, str]]  # (model column, destination field), in mapping order
    state_schema: str = "dinsync"
    phone_region: str | None = None  # default region of phone keys (ISO 3166 alpha-2)

    def __post_init__(self) -> None:
        check_sync_name(self.sync)
        check_identifier(self.state_schema, "state schema")
        check_identifier(self.key_column, "key column")
        if self.key_normalization not in KEY_NORMALIZATIONS:
            raise SqlError(
                f"unknown key normalization {self.key_normalization!r}; "
                f"expected one of {', '.join(KEY_NORMALIZATIONS)}"
            )
        if not self.fields:
            raise SqlError(f"sync {self.sync!r} maps no field")
        seen: set[str] = set()
        for pair in self.fields:
            if len(pair) != 2:
                raise SqlError(f"a field mapping is a (model column, destination field) pair, got {pair!r}")
            column, field = pair
            check_identifier(column, "model column")
            check_identifier(field, "destination field")
            if field in seen:
                raise SqlError(f"destination field {field!r} is mapped more than once")
            seen.add(field)


@dataclass
class PlanStats:
    segment_rows: int
    null_keys: int
    duplicate_keys: int  # distinct keys that occur more than once
    duplicate_rows: int
    added: int
    changed: int
    removed: int
    unchanged: int  # keyed rows not sent (includes parked rows whose values did not change)
    full_refresh: bool
    retry_rejected: bool = False
    first_sync: bool = False  # the snapshot was empty: every row is added, commits only insert


@dataclass(frozen=True)
class MappedField:
    i: int
    column: str
    field: str
    snap_name: str
