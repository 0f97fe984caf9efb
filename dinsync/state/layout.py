"""Versioned layouts of the state tables, written once and rendered per warehouse.

Each version lists the statements that bring the layout from the previous version to it.
Statements are neutral SQL (sqlglot's dialect) with `{s}` for the quoted state schema; they are
rendered for the warehouse's dialect, with unbounded text as the warehouse's `text_type` and
PRIMARY KEY clauses only where the lock arbiter relies on them.

Layout 1 (dinsync 0.1): meta, runs, rejections, locks (PRIMARY KEY on sync).
Layout 2: locks gain `ticket` and `choosing` (the insert-then-verify arbiter, for warehouses that
do not enforce keys); holders are written host:pid:starttime (no DDL).
Layout 3: runs gain `pending` (rows whose outcome did not arrive in the run) and `parked` (rows
rejected earlier for their content, not planned again until they change).
Layout 4: runs gain `segment_rows` (rows the model returned); `sync_state` (one row per sync:
paused or not and why, the last state sent to notification channels) and `events` (pauses,
resumes, notifications sent or failed) are created.
Layout 5 (no DDL): state written by a dinsync that keeps per-sync records in `meta` (`mapping:`,
`destination:`, `match:`, `phone_region:`, `phone_keys:`, `column_types:`, `forms:`, `wrote:`),
fingerprints nested DuckDB columns by their text form and waits for a pending bulk job still
running. Layout 4's dinsync ignores those records and would leave them stale (phone keys read by
its older rule under a record saying the new one read them: this version would never read them
again), so it must refuse this state, which it does for any layout newer than its own. A change of
what the state means that an older dinsync would misread or undo is a new layout, even without DDL.
"""
from __future__ import annotations

import functools
import re

LAYOUT_VERSION = 5

META = "CREATE TABLE IF NOT EXISTS {s}.meta (key VARCHAR NOT NULL{pk_meta}, value VARCHAR)"

MIGRATIONS: dict[int, list[str]] = {
    1: [
        "CREATE TABLE IF NOT EXISTS {s}.runs (run_id VARCHAR, sync VARCHAR, started_at TIMESTAMP, "
        "finished_at TIMESTAMP, status VARCHAR, full_refresh BOOLEAN, added BIGINT, changed BIGINT, "
        "removed BIGINT, unchanged BIGINT, null_keys BIGINT, duplicate_keys BIGINT, sent BIGINT, "
        "acknowledged BIGINT, rejected BIGINT, not_found BIGINT, failed BIGINT, requests BIGINT, "
        "throttled BIGINT, seconds DOUBLE PRECISION, error VARCHAR, warnings VARCHAR, tool_version VARCHAR)",
        "CREATE TABLE IF NOT EXISTS {s}.rejections (run_id VARCHAR, sync VARCHAR, key VARCHAR, "
        "field VARCHAR, status VARCHAR, reason VARCHAR, rejected_at TIMESTAMP)",
        "CREATE TABLE IF NOT EXISTS {s}.locks (sync VARCHAR NOT NULL{pk_locks}, run_id VARCHAR, holder VARCHAR, "
        "acquired_at TIMESTAMP, expires_at TIMESTAMP)",
    ],
    2: [
        "ALTER TABLE {s}.locks ADD COLUMN ticket BIGINT",
        "ALTER TABLE {s}.locks ADD COLUMN choosing BOOLEAN",
    ],
    3: [
        "ALTER TABLE {s}.runs ADD COLUMN pending BIGINT",
        "ALTER TABLE {s}.runs ADD COLUMN parked BIGINT",
    ],
    4: [
        "ALTER TABLE {s}.runs ADD COLUMN segment_rows BIGINT",
        "CREATE TABLE IF NOT EXISTS {s}.sync_state (sync VARCHAR NOT NULL, paused BOOLEAN, paused_by VARCHAR, "
        "culprit VARCHAR, reason VARCHAR, paused_at TIMESTAMP, paused_run_id VARCHAR, checked_at TIMESTAMP, "
        "check_error VARCHAR, notified_state VARCHAR, notified_at TIMESTAMP, updated_at TIMESTAMP)",
        "CREATE TABLE IF NOT EXISTS {s}.events (event_at TIMESTAMP, sync VARCHAR, event VARCHAR, run_id VARCHAR, "
        "detail VARCHAR)",
    ],
    5: [],  # (see above: the version alone, which layout 4's dinsync refuses)
}

_ADD_COLUMN = re.compile(r"ALTER TABLE \{s\}\.(\w+) ADD COLUMN (\w+) ")


def added_column(statement: str) -> tuple[str, str] | None:
    """(table, column) a statement adds, so that a migration interrupted half-way (or run by two
    processes at once where DDL is not transactional) skips what is already there."""
    m = _ADD_COLUMN.match(statement)
    return (m.group(1), m.group(2)) if m else None


_CREATE_TABLE = re.compile(r"CREATE TABLE IF NOT EXISTS \{s\}\.(\w+) \((.*)\)$", re.S)


def created_table(statement: str) -> tuple[str, list[str]] | None:
    """(table, its column names) a CREATE TABLE statement creates, else None."""
    m = _CREATE_TABLE.match(statement)
    if not m:
        return None
    return m.group(1), [item.strip().split()[0] for item in m.group(2).split(",")]


@functools.lru_cache(maxsize=256)
def render(statement: str, schema: str, dialect: str, text_type: str, primary_keys: bool,
           timestamp_type: str = "TIMESTAMP") -> str:
    """A layout statement in `dialect`, for the state schema `schema` (sqlglot is loaded only
    when a layout is created or migrated); its times as `timestamp_type` (a zone-less type)."""
    from ..lazy_imports import sqlglot_modules

    sqlglot, exp = sqlglot_modules()
    text = statement.format(
        s=exp.to_identifier(schema, quoted=True).sql(),
        pk_meta=" PRIMARY KEY" if primary_keys else "",
        pk_locks=" PRIMARY KEY" if primary_keys else "",
    )
    tree = sqlglot.parse_one(text)
    unbounded = exp.DataType.build(text_type, dialect=dialect)
    zoneless = exp.DataType.build(timestamp_type, dialect=dialect)
    for node in list(tree.find_all(exp.DataType)):
        if node.this in (exp.DataType.Type.VARCHAR, exp.DataType.Type.TEXT) and not node.expressions:
            node.replace(unbounded.copy())
        elif node.this == exp.DataType.Type.TIMESTAMP and timestamp_type != "TIMESTAMP":
            node.replace(zoneless.copy())
    return tree.sql(dialect=dialect, identify=True)
