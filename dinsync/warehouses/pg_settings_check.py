"""Whether a PostgreSQL session runs with the settings dinsync sent when it connected.

dinsync's sessions get their settings in the startup packet's `options` (`-c name=value`). A
connection pooler may refuse that parameter (PgBouncer by default: "unsupported startup parameter:
options") or drop it (`ignore_startup_parameters = options`, the usual advice for the refusal):
the session then ran with the server's defaults, silently. Without the configured `search_path`
the model's unqualified names were looked up in `public` (another table of the same name was
synced), and without `extra_float_digits`, `IntervalStyle` or an ISO `DateStyle` values were
hashed or read otherwise. A pooler in transaction mode cannot keep a session's SET either (the next
transaction may run on another server session), so the settings that matter must be in force when
a session starts: sent in `options`, or the defaults of dinsync's role (ALTER ROLE ... SET).
"""
from __future__ import annotations

import re
from typing import Any

# PgBouncer's refusals: "unsupported startup parameter: options" (before 1.20), "unsupported
# startup parameter in options: jit" (1.20+, a setting it does not track)
OPTIONS_REFUSED = re.compile(r"unsupported (?:options )?startup parameter", re.IGNORECASE)
SEARCH_PATH = "search_path"
# Values other than the one sent that do as well: from PostgreSQL 12 any positive
# extra_float_digits writes a float's shortest exact text (the default, 1, included)
_ALSO_GOOD = {"extra_float_digits": lambda have, version: version >= 120000 and have.lstrip("-").isdigit()
              and int(have) > 0}


def options_refused(exc: BaseException) -> bool:
    return bool(OPTIONS_REFUSED.search(str(exc)))


def settings_not_in_force(conn: Any, wanted: dict[str, str]) -> tuple[str, dict[str, tuple[str, str]]]:
    """(the session's role, {name: (wanted value, the session's value)} of each of `wanted` that
    session `conn` (autocommit) does not run with). Each wanted value is read as the server writes
    it by setting it in a transaction rolled back (SET LOCAL); `search_path` compares the schemas it
    resolves to (a role's `analytics` is the `"analytics"` dinsync sends). Settings a session cannot
    SET (those of the server's start or of a connection's) are not checked."""
    names = list(wanted)
    with conn.transaction(force_rollback=True):
        rows = conn.execute(
            "SELECT s.n, current_setting(s.n, true), "
            "(SELECT context FROM pg_catalog.pg_settings WHERE lower(name) = lower(s.n)), "
            "current_schemas(false)::text, current_user::text FROM unnest(%s::text[]) WITH ORDINALITY AS s(n, i) "
            "ORDER BY s.i", [names]).fetchall()
        role = rows[0][4] if rows else ""
        schemas_before = rows[0][3] if rows else ""
        checked = [(n, before) for n, before, context, _, _ in rows if context in (None, "user")]
        after: list[str] = []
        if checked:
            sql = "SELECT " + ", ".join("set_config(%s, %s, true)" for _ in checked)
            after = list(conn.execute(sql, [x for n, _ in checked for x in (n, wanted[n])]).fetchone())
        schemas_after = conn.execute("SELECT current_schemas(false)::text").fetchone()[0]
    version = conn.info.server_version
    missing = {}
    for (name, before), value in zip(checked, after):
        also_good = _ALSO_GOOD.get(name.lower())
        same = (schemas_before == schemas_after if name.lower() == SEARCH_PATH else
                before == value or bool(before is not None and also_good and also_good(before, version)))
        if not same:
            missing[name] = (value, before if before is not None else "(unset)")
    return role, missing


def quote_role(role: str) -> str:
    return '"' + role.replace('"', '""') + '"'


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"
